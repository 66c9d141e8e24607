package cli

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"runtime/debug"
	"strings"

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

// Version is the binary's module version and the commit it was built from.
func Version() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "stratus (unknown version)"
	}
	v := "stratus " + info.Main.Version
	var rev, dirty string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "+changes"
			}
		}
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if rev != "" {
		v += " (" + rev + dirty + ")"
	}
	return strings.TrimSpace(v + " " + info.GoVersion)
}
