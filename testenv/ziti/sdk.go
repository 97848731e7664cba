package ziti

import (
	"fmt"

	sdk "github.com/openziti/sdk-golang/ziti"
)

// NewContext loads the identity into an sdk-golang context that asks for
// configTypes with the services, and authenticates it. opts may be nil
// (the SDK's defaults). The caller closes the context.
//
// It avoids a data race of sdk-golang v1.5.0: NewContext fetches the
// controller's version in a goroutine while the first Authenticate
// writes the TLS configuration that fetch reads. NewContext here waits
// for the fetch (it runs once) before authenticating.
func NewContext(id Identity, opts *sdk.Options, configTypes ...string) (sdk.Context, error) {
	cfg, err := sdk.NewConfigFromFile(id.File)
	if err != nil {
		return nil, fmt.Errorf("identity %s: %w", id.Name, err)
	}
	cfg.ConfigTypes = configTypes
	zctx, err := sdk.NewContextWithOpts(cfg, opts)
	if err != nil {
		return nil, fmt.Errorf("ziti context for %s: %w", id.Name, err)
	}
	if impl, ok := zctx.(*sdk.ContextImpl); ok {
		impl.CtrlClt.API.ControllerSupportsHa()
	}
	if err := zctx.Authenticate(); err != nil {
		zctx.Close()
		return nil, fmt.Errorf("authenticate %s: %w", id.Name, err)
	}
	return zctx, nil
}
