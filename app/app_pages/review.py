"""Review page."""

import streamlit as st

st.title("Review")
st.info("This page is being built.")
