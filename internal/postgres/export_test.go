package postgres

// QueryName exposes queryName to the external tests.
var QueryName = queryName
