"""One module per page of the desktop analyzer; ``app.py`` puts them in the navigation."""
