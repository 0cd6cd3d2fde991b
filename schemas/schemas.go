// Package schemas holds the JSON Schema of each host description version, printed by `symroute schema` for
// editors and CI linters. The parser in internal/core/description is the authority; a test keeps the two in step.
package schemas

import _ "embed"

// HostV1 is the JSON Schema of version 1 host descriptions.
//
//go:embed host.v1.schema.json
var HostV1 []byte
