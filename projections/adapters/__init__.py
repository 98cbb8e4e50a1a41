"""The read side's adapters: what talks to the database's own dialect, below the projection's logic."""
