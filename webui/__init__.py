"""The web app's pieces: the shared `Studio` (model, data, database loaded once per process),
the logic behind each tab as plain functions (tested without a browser), the Gradio tabs that
only wire those functions to components, and the REST routes. `app.py` composes them."""
