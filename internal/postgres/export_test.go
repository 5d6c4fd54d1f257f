package postgres

// QueryName exposes queryName to the external tests.
var QueryName = queryName

// SetCreateLocale makes EnsureDatabase ask for locale until t ends.
func SetCreateLocale(t interface{ Cleanup(func()) }, locale string) {
	old := createLocale
	createLocale = locale
	t.Cleanup(func() { createLocale = old })
}
