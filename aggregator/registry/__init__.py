"""Resource registration: linking institutions through plugins, and the registrations' lifecycle."""
