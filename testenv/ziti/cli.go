package ziti

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// CommandError is a failed ziti command: its arguments, its combined output
// and how it ended.
type CommandError struct {
	Args   []string
	Output []byte
	Err    error
}

// Error names the command and includes its output.
func (e *CommandError) Error() string {
	quoted := make([]string, len(e.Args))
	for i, a := range e.Args {
		if a == "" || strings.ContainsAny(a, " \t\"'#@{}") {
			a = strconv.Quote(a)
		}
		quoted[i] = a
	}
	return fmt.Sprintf("ziti %s: %v: %s", strings.Join(quoted, " "), e.Err, bytes.TrimSpace(e.Output))
}

// Unwrap returns how the command ended.
func (e *CommandError) Unwrap() error { return e.Err }

// Run runs `ziti args...` with the network's CLI configuration and returns
// its standard output. A failure is a *CommandError.
func (n *Network) Run(ctx context.Context, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, n.bin, args...)
	cmd.Env = n.env
	cmd.Dir = n.dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		out := append(stdout.Bytes(), stderr.Bytes()...)
		return nil, &CommandError{Args: args, Output: out, Err: err}
	}
	return stdout.Bytes(), nil
}

// create runs `ziti edge create args... -j` and returns the new entity's id.
func (n *Network) create(ctx context.Context, args ...string) (string, error) {
	args = append(append([]string{"edge", "create"}, args...), "--output-json")
	out, err := n.Run(ctx, args...)
	if err != nil {
		return "", err
	}
	id, err := createdID(out)
	if err != nil {
		return "", fmt.Errorf("ziti %s: %w", strings.Join(args, " "), err)
	}
	return id, nil
}

// createdID extracts the id from the JSON response of a create command,
// which may follow lines of other output.
func createdID(out []byte) (string, error) {
	start := bytes.IndexByte(out, '{')
	if start < 0 {
		return "", fmt.Errorf("no JSON response in %q", out)
	}
	var resp struct {
		Data struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if err := json.NewDecoder(bytes.NewReader(out[start:])).Decode(&resp); err != nil {
		return "", fmt.Errorf("decode response %q: %w", out, err)
	}
	if resp.Data.ID == "" {
		return "", fmt.Errorf("no id in response %q", out)
	}
	return resp.Data.ID, nil
}

// Identity is an enrolled identity.
type Identity struct {
	Name string
	ID   string
	// File is the identity JSON (controller URL, certificate, key and CA)
	// that sdk-golang and `ziti tunnel` load.
	File string
}

// CreateIdentity creates an identity with the given role attributes and
// enrolls it, writing its identity file into the network's directory.
func (n *Network) CreateIdentity(ctx context.Context, name string, roleAttributes ...string) (Identity, error) {
	base := filepath.Join(n.identityDir(), n.uniqueName(name))
	jwt, file := base+".jwt", base+".json"
	args := []string{"identity", name, "--jwt-output-file", jwt}
	if len(roleAttributes) > 0 {
		args = append(args, "--role-attributes", strings.Join(roleAttributes, ","))
	}
	id, err := n.create(ctx, args...)
	if err != nil {
		return Identity{}, err
	}
	if _, err := n.Run(ctx, "edge", "enroll", jwt, "--out", file, "--rm"); err != nil {
		return Identity{}, err
	}
	return Identity{Name: name, ID: id, File: file}, nil
}

// Config is the data of a service config of one config type.
type Config interface {
	// ConfigType names the config type, such as "intercept.v1".
	ConfigType() string
}

// RawConfig is a config given as JSON, for types or fields the typed
// configs do not cover.
type RawConfig struct {
	Type string
	JSON json.RawMessage
}

// ConfigType returns c.Type.
func (c RawConfig) ConfigType() string { return c.Type }

// MarshalJSON returns c.JSON.
func (c RawConfig) MarshalJSON() ([]byte, error) {
	if !json.Valid(c.JSON) {
		return nil, fmt.Errorf("config of type %s is not valid JSON", c.Type)
	}
	return c.JSON, nil
}

// PortRange is an inclusive range of ports.
type PortRange struct {
	Low  uint16 `json:"low"`
	High uint16 `json:"high"`
}

// DialOptions are the intercept.v1 options for dialing the service.
type DialOptions struct {
	ConnectTimeoutSeconds int    `json:"connectTimeoutSeconds,omitempty"`
	Identity              string `json:"identity,omitempty"`
}

// InterceptV1 is an intercept.v1 config: what a client tunneler captures.
type InterceptV1 struct {
	Protocols              []string     `json:"protocols"`
	Addresses              []string     `json:"addresses"`
	PortRanges             []PortRange  `json:"portRanges"`
	SourceIP               string       `json:"sourceIp,omitempty"`
	DialOptions            *DialOptions `json:"dialOptions,omitempty"`
	AllowedSourceAddresses []string     `json:"allowedSourceAddresses,omitempty"`
}

// ConfigType returns "intercept.v1".
func (InterceptV1) ConfigType() string { return "intercept.v1" }

// HostV1 is a host.v1 config: where a hosting tunneler sends a service's
// connections. Each Forward flag takes the value from the dialing side,
// restricted to the matching Allowed list; without it the fixed Protocol,
// Address or Port is used.
type HostV1 struct {
	Protocol               string      `json:"protocol,omitempty"`
	ForwardProtocol        bool        `json:"forwardProtocol,omitempty"`
	AllowedProtocols       []string    `json:"allowedProtocols,omitempty"`
	Address                string      `json:"address,omitempty"`
	ForwardAddress         bool        `json:"forwardAddress,omitempty"`
	AllowedAddresses       []string    `json:"allowedAddresses,omitempty"`
	Port                   uint16      `json:"port,omitempty"`
	ForwardPort            bool        `json:"forwardPort,omitempty"`
	AllowedPortRanges      []PortRange `json:"allowedPortRanges,omitempty"`
	AllowedSourceAddresses []string    `json:"allowedSourceAddresses,omitempty"`
}

// ConfigType returns "host.v1".
func (HostV1) ConfigType() string { return "host.v1" }

// CreateConfig creates a config named name and returns its id.
func (n *Network) CreateConfig(ctx context.Context, name string, cfg Config) (string, error) {
	data, err := json.Marshal(cfg)
	if err != nil {
		return "", fmt.Errorf("config %s: %w", name, err)
	}
	return n.create(ctx, "config", name, cfg.ConfigType(), string(data))
}

// UpdateConfig replaces the data of the config named name. The config type
// cannot change.
func (n *Network) UpdateConfig(ctx context.Context, name string, cfg Config) error {
	data, err := json.Marshal(cfg)
	if err != nil {
		return fmt.Errorf("config %s: %w", name, err)
	}
	_, err = n.Run(ctx, "edge", "update", "config", name, "--data", string(data))
	return err
}

// Service describes a service to create.
type Service struct {
	Name string
	// Configs are the names or ids of the service's configs.
	Configs []string
	// RoleAttributes are what policies select the service by ("#attr").
	RoleAttributes []string
}

// CreateService creates a service and returns its id.
func (n *Network) CreateService(ctx context.Context, s Service) (string, error) {
	args := []string{"service", s.Name}
	if len(s.Configs) > 0 {
		args = append(args, "--configs", strings.Join(s.Configs, ","))
	}
	if len(s.RoleAttributes) > 0 {
		args = append(args, "--role-attributes", strings.Join(s.RoleAttributes, ","))
	}
	return n.create(ctx, args...)
}

// ServiceUpdate changes a service. A nil field is left as it is.
type ServiceUpdate struct {
	// Name renames the service when not empty.
	Name string
	// Configs replaces the service's configs. The ziti CLI cannot set an
	// empty list (it sends null, which changes nothing), so an empty,
	// non-nil Configs is an error: delete and recreate the service instead.
	Configs []string
	// RoleAttributes replaces the service's role attributes; an empty,
	// non-nil slice removes them all.
	RoleAttributes []string
}

// UpdateService changes the service named name.
func (n *Network) UpdateService(ctx context.Context, name string, u ServiceUpdate) error {
	args := []string{"edge", "update", "service", name}
	if u.Name != "" {
		args = append(args, "--name", u.Name)
	}
	if u.Configs != nil && len(u.Configs) == 0 {
		return fmt.Errorf("update service %s: the ziti CLI cannot remove all configs of a service", name)
	}
	if u.Configs != nil {
		args = append(args, "--configs", strings.Join(u.Configs, ","))
	}
	if u.RoleAttributes != nil {
		args = append(args, "--role-attributes", strings.Join(u.RoleAttributes, ","))
	}
	_, err := n.Run(ctx, args...)
	return err
}

// DeleteService deletes the service named name.
func (n *Network) DeleteService(ctx context.Context, name string) error {
	return n.Delete(ctx, "service", name)
}

// Delete deletes the entity of entityType ("service", "config",
// "identity", "service-policy", ...) whose name or id is name. Deleting an
// entity that does not exist is an error.
func (n *Network) Delete(ctx context.Context, entityType, name string) error {
	args := []string{"edge", "delete", entityType, name}
	out, err := n.Run(ctx, args...)
	if err != nil {
		return err
	}
	// The CLI exits 0 when nothing matched.
	if bytes.HasPrefix(bytes.TrimSpace(out), []byte("Found 0 ")) {
		return &CommandError{Args: args, Output: out, Err: errNotFound}
	}
	return nil
}

// errNotFound marks a command that matched no entity.
var errNotFound = errors.New("no such entity")

// PolicyType is what a service policy grants: dialing or binding (hosting).
type PolicyType string

// The service policy types.
const (
	Dial PolicyType = "Dial"
	Bind PolicyType = "Bind"
)

// CreateServicePolicy lets the identities matching identityRoles dial or
// bind the services matching serviceRoles, and returns the policy's id.
// Roles are "@name-or-id", "#attribute" or "#all".
func (n *Network) CreateServicePolicy(ctx context.Context, name string, kind PolicyType, serviceRoles, identityRoles []string) (string, error) {
	return n.create(ctx, "service-policy", name, string(kind),
		"--service-roles", strings.Join(serviceRoles, ","),
		"--identity-roles", strings.Join(identityRoles, ","))
}

// CreateEdgeRouterPolicy lets the identities matching identityRoles use the
// edge routers matching routerRoles. Quickstart already made
// "all-endpoints-public-routers" (#all identities, #public routers).
func (n *Network) CreateEdgeRouterPolicy(ctx context.Context, name string, routerRoles, identityRoles []string) (string, error) {
	return n.create(ctx, "edge-router-policy", name,
		"--edge-router-roles", strings.Join(routerRoles, ","),
		"--identity-roles", strings.Join(identityRoles, ","))
}

// CreateServiceEdgeRouterPolicy lets the services matching serviceRoles be
// reached through the edge routers matching routerRoles. Quickstart already
// made "all-routers-all-services" (#all and #all).
func (n *Network) CreateServiceEdgeRouterPolicy(ctx context.Context, name string, routerRoles, serviceRoles []string) (string, error) {
	return n.create(ctx, "service-edge-router-policy", name,
		"--edge-router-roles", strings.Join(routerRoles, ","),
		"--service-roles", strings.Join(serviceRoles, ","))
}

// List returns the entities of entityType ("services", "identities",
// "edge-routers", "terminators", ...) that match filter, a ziti query such
// as `name="echo"`; an empty filter lists them all (up to the controller's
// page size).
func (n *Network) List(ctx context.Context, entityType, filter string) ([]json.RawMessage, error) {
	args := []string{"edge", "list", entityType}
	if filter != "" {
		args = append(args, filter)
	}
	args = append(args, "--output-json")
	out, err := n.Run(ctx, args...)
	if err != nil {
		return nil, err
	}
	var resp struct {
		Data []json.RawMessage `json:"data"`
	}
	if start := bytes.IndexByte(out, '{'); start >= 0 {
		out = out[start:]
	}
	if err := json.Unmarshal(out, &resp); err != nil {
		return nil, fmt.Errorf("ziti edge list %s: decode %q: %w", entityType, out, err)
	}
	return resp.Data, nil
}
