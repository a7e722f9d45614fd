"""One module per console page: its routes, the read job behind it, its template's name."""
