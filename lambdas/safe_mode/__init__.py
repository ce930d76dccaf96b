"""Safe mode: a drift alarm sends every request to a person until someone clears it."""
