// Package api embeds the OpenAPI document, the contract the service is generated from, so the
// binary can serve it byte for byte at /openapi.yaml.
package api

import _ "embed"

// OpenAPIYAML is api/openapi.yaml as written.
//
//go:embed openapi.yaml
var OpenAPIYAML []byte
