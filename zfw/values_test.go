package zfw

import (
	"fmt"
	"strings"
	"testing"

	"github.com/zfw-go/zfw/internal/bpfobj"
	"github.com/zfw-go/zfw/internal/policy"
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
		{"EventDrop", uint32(EventDrop), uint32(bpfobj.ZfwEventKindZFW_EVENT_DROP), EventDrop.String()},
		{"EventSteer", uint32(EventSteer), uint32(bpfobj.ZfwEventKindZFW_EVENT_STEER), EventSteer.String()},
		{"EventSession", uint32(EventSession), uint32(bpfobj.ZfwEventKindZFW_EVENT_SESSION), EventSession.String()},
		{"EventBan", uint32(EventBan), uint32(bpfobj.ZfwEventKindZFW_EVENT_BAN), EventBan.String()},
		{"SessionOpenedOut", uint32(SessionOpenedOut), uint32(bpfobj.ZfwTrackZFW_TRACK_OPENED_OUT), SessionOpenedOut.String()},
		{"SessionOpenedIn", uint32(SessionOpenedIn), uint32(bpfobj.ZfwTrackZFW_TRACK_OPENED_IN), SessionOpenedIn.String()},
		{"SessionEstablished", uint32(SessionEstablished), uint32(bpfobj.ZfwTrackZFW_TRACK_ESTABLISHED), SessionEstablished.String()},
		{"SessionClosed", uint32(SessionClosed), uint32(bpfobj.ZfwTrackZFW_TRACK_CLOSED), SessionClosed.String()},
		{"SessionReset", uint32(SessionReset), uint32(bpfobj.ZfwTrackZFW_TRACK_RESET), SessionReset.String()},
		{"SessionExpired", uint32(SessionExpired), uint32(bpfobj.ZfwTrackZFW_TRACK_EXPIRED), SessionExpired.String()},
		{"ReasonMalformed", uint32(ReasonMalformed), uint32(bpfobj.ZfwReasonZFW_REASON_MALFORMED), ReasonMalformed.String()},
		{"ReasonRuleDeny", uint32(ReasonRuleDeny), uint32(bpfobj.ZfwReasonZFW_REASON_RULE_DENY), ReasonRuleDeny.String()},
		{"ReasonDefaultDeny", uint32(ReasonDefaultDeny), uint32(bpfobj.ZfwReasonZFW_REASON_DEFAULT_DENY), ReasonDefaultDeny.String()},
		{"ReasonFragment", uint32(ReasonFragment), uint32(bpfobj.ZfwReasonZFW_REASON_FRAGMENT), ReasonFragment.String()},
		{"ReasonNoListener", uint32(ReasonNoListener), uint32(bpfobj.ZfwReasonZFW_REASON_NO_LISTENER), ReasonNoListener.String()},
		{"ReasonAssignFailed", uint32(ReasonAssignFailed), uint32(bpfobj.ZfwReasonZFW_REASON_ASSIGN_FAILED), ReasonAssignFailed.String()},
		{"ReasonBanned", uint32(ReasonBanned), uint32(bpfobj.ZfwReasonZFW_REASON_BANNED), ReasonBanned.String()},
		{"ReasonDNP3Blocked", uint32(ReasonDNP3Blocked), uint32(bpfobj.ZfwReasonZFW_REASON_DNP3BLOCKED), ReasonDNP3Blocked.String()},
		{"ReasonDNP3Dir", uint32(ReasonDNP3Dir), uint32(bpfobj.ZfwReasonZFW_REASON_DNP3DIRECTION), ReasonDNP3Dir.String()},
		{"ReasonModbus", uint32(ReasonModbus), uint32(bpfobj.ZfwReasonZFW_REASON_MODBUS_UNEXPECTED), ReasonModbus.String()},
		{"ReasonMasquerade", uint32(ReasonMasquerade), uint32(bpfobj.ZfwReasonZFW_REASON_MASQUERADE), ReasonMasquerade.String()},
		{"ReasonNotAllowed", uint32(ReasonNotAllowed), uint32(bpfobj.ZfwReasonZFW_REASON_NOT_ALLOWED), ReasonNotAllowed.String()},
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
