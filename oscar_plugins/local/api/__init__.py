"""The REST API as OSCAR's Go handlers answer it: routes, callers, personas, Go's encodings, definitions."""
