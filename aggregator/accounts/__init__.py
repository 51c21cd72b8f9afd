"""People: sign-up, login, sessions, the dashboard."""
