package zfw

import (
	"fmt"
	"strings"
	"testing"

	"github.com/zfw-go/zfw/internal/bpfobj"
	"github.com/zfw-go/zfw/internal/policy"
	"github.com/zfw-go/zfw/zfw/event"
)

// TestPublicValuesAreTheDataplanes: the public enums carry the values
// the BPF program and the rule model use (they are spelled as numbers so
// that no generated name reaches the documentation), and each has a name.
func TestPublicValuesAreTheDataplanes(t *testing.T) {
	tests := []struct {
		name             string
		public, internal uint32
		str              string
	}{
		{"event.Drop", uint32(event.Drop), uint32(bpfobj.ZfwEventKindZFW_EVENT_DROP), event.Drop.String()},
		{"event.Steer", uint32(event.Steer), uint32(bpfobj.ZfwEventKindZFW_EVENT_STEER), event.Steer.String()},
		{"event.Session", uint32(event.Session), uint32(bpfobj.ZfwEventKindZFW_EVENT_SESSION), event.Session.String()},
		{"event.Ban", uint32(event.Ban), uint32(bpfobj.ZfwEventKindZFW_EVENT_BAN), event.Ban.String()},
		{"event.OpenedOut", uint32(event.OpenedOut), uint32(bpfobj.ZfwTrackZFW_TRACK_OPENED_OUT), event.OpenedOut.String()},
		{"event.OpenedIn", uint32(event.OpenedIn), uint32(bpfobj.ZfwTrackZFW_TRACK_OPENED_IN), event.OpenedIn.String()},
		{"event.Established", uint32(event.Established), uint32(bpfobj.ZfwTrackZFW_TRACK_ESTABLISHED), event.Established.String()},
		{"event.Closed", uint32(event.Closed), uint32(bpfobj.ZfwTrackZFW_TRACK_CLOSED), event.Closed.String()},
		{"event.Reset", uint32(event.Reset), uint32(bpfobj.ZfwTrackZFW_TRACK_RESET), event.Reset.String()},
		{"event.Expired", uint32(event.Expired), uint32(bpfobj.ZfwTrackZFW_TRACK_EXPIRED), event.Expired.String()},
		{"event.ReasonMalformed", uint32(event.ReasonMalformed), uint32(bpfobj.ZfwReasonZFW_REASON_MALFORMED), event.ReasonMalformed.String()},
		{"event.ReasonRuleDeny", uint32(event.ReasonRuleDeny), uint32(bpfobj.ZfwReasonZFW_REASON_RULE_DENY), event.ReasonRuleDeny.String()},
		{"event.ReasonDefaultDeny", uint32(event.ReasonDefaultDeny), uint32(bpfobj.ZfwReasonZFW_REASON_DEFAULT_DENY), event.ReasonDefaultDeny.String()},
		{"event.ReasonFragment", uint32(event.ReasonFragment), uint32(bpfobj.ZfwReasonZFW_REASON_FRAGMENT), event.ReasonFragment.String()},
		{"event.ReasonNoListener", uint32(event.ReasonNoListener), uint32(bpfobj.ZfwReasonZFW_REASON_NO_LISTENER), event.ReasonNoListener.String()},
		{"event.ReasonAssignFailed", uint32(event.ReasonAssignFailed), uint32(bpfobj.ZfwReasonZFW_REASON_ASSIGN_FAILED), event.ReasonAssignFailed.String()},
		{"event.ReasonBanned", uint32(event.ReasonBanned), uint32(bpfobj.ZfwReasonZFW_REASON_BANNED), event.ReasonBanned.String()},
		{"event.ReasonDNP3Blocked", uint32(event.ReasonDNP3Blocked), uint32(bpfobj.ZfwReasonZFW_REASON_DNP3BLOCKED), event.ReasonDNP3Blocked.String()},
		{"event.ReasonDNP3Dir", uint32(event.ReasonDNP3Dir), uint32(bpfobj.ZfwReasonZFW_REASON_DNP3DIRECTION), event.ReasonDNP3Dir.String()},
		{"event.ReasonModbus", uint32(event.ReasonModbus), uint32(bpfobj.ZfwReasonZFW_REASON_MODBUS_UNEXPECTED), event.ReasonModbus.String()},
		{"event.ReasonMasquerade", uint32(event.ReasonMasquerade), uint32(bpfobj.ZfwReasonZFW_REASON_MASQUERADE), event.ReasonMasquerade.String()},
		{"event.ReasonNotAllowed", uint32(event.ReasonNotAllowed), uint32(bpfobj.ZfwReasonZFW_REASON_NOT_ALLOWED), event.ReasonNotAllowed.String()},
		{"Pass", uint32(Pass), uint32(policy.ActionPass), Pass.String()},
		{"Deny", uint32(Deny), uint32(policy.ActionDeny), Deny.String()},
		{"TProxy", uint32(TProxy), uint32(policy.ActionTProxy), TProxy.String()},
	}
	for _, tt := range tests {
		if tt.public != tt.internal {
			t.Errorf("%s is %d, the dataplane's is %d", tt.name, tt.public, tt.internal)
		}
		if tt.str == "" || strings.HasSuffix(tt.str, fmt.Sprintf("(%d)", tt.public)) {
			t.Errorf("%s has no name of its own: %q", tt.name, tt.str)
		}
	}
}
