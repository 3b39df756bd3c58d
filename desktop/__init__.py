"""Pages of the desktop analyzer (Streamlit), one module each; ``app.py`` is the entry point."""
