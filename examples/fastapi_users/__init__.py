"""FastAPI + fastapi-users with username login and bearer tokens kept in TokenginX.

Run from the repository root: ``uvicorn examples.fastapi_users.app:app``; see README.md.
"""
