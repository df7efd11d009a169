"""Services built on the twin library (the FastAPI application lives in ``services.api``)."""
