package cli

import (
	"errors"
	"fmt"
	"net"
	"net/url"

	"github.com/aws/smithy-go"
)

// explain says what went wrong in plain words: a server that cannot be
// reached, or the server's own message, not the SDK's wrapping of them.
func explain(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		out := ae.ErrorCode()
		if msg := ae.ErrorMessage(); msg != "" {
			out = msg + " (" + out + ")"
		}
		// The request id finds the request in the server's log.
		var rid interface{ ServiceRequestID() string }
		if errors.As(err, &rid) && rid.ServiceRequestID() != "" {
			out += " [request " + rid.ServiceRequestID() + "]"
		}
		return out
	}
	var ue *url.Error
	var oe *net.OpError
	if errors.As(err, &ue) && errors.As(err, &oe) && oe.Op == "dial" {
		base := ue.URL
		if u, perr := url.Parse(ue.URL); perr == nil {
			base = u.Scheme + "://" + u.Host
		}
		return fmt.Sprintf("cannot reach Stratus at %s: is `stratus server` running? (--endpoint, STRATUS_ENDPOINT)", base)
	}
	return err.Error()
}
