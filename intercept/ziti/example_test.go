package ziti_test

import (
	"encoding/json"
	"fmt"

	"github.com/openziti/edge-api/rest_model"

	"github.com/zfw-go/zfw/intercept/ziti"
)

// A service's intercept.v1 config as the SDK hands it over, decoded.
func ExampleDecodeConfig() {
	id, name := "3Tq", "web"
	svc := &rest_model.ServiceDetail{BaseEntity: rest_model.BaseEntity{ID: &id}, Name: &name}
	json.Unmarshal([]byte(`{"intercept.v1": {
		"protocols": ["tcp"],
		"addresses": ["web.internal", "10.9.0.0/24"],
		"portRanges": [{"low": 443, "high": 443}]
	}}`), &svc.Config)
	cfg, ok, err := ziti.DecodeConfig(svc)
	fmt.Println(ok, err)
	fmt.Println(cfg.Type, cfg.Protocols, cfg.Addresses, cfg.PortRanges)

	svc.Config["intercept.v1"]["portRanges"] = []any{map[string]any{"low": 90, "high": 80}}
	_, _, err = ziti.DecodeConfig(svc)
	fmt.Println(err)
	// Output:
	// true <nil>
	// intercept.v1 [tcp] [web.internal 10.9.0.0/24] [443]
	// service "web" (id 3Tq): intercept.v1: portRanges[0]: low 90 > high 80
}
