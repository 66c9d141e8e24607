package server

import (
	"net"
	"net/http"
	"strings"
)

// s3Route tells S3 requests from the other APIs on the same listener.
// Paths cannot: a bucket may be called 2015-03-31 or schedules. What a
// client signs can: an S3 request is signed for the service s3 (in its
// Authorization header or presigned query), or addresses a bucket as a
// subdomain of one of hosts.
type s3Route struct{ hosts []string }

func (s s3Route) match(r *http.Request) bool {
	if credentialService(r) == "s3" {
		return true
	}
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	for _, base := range s.hosts {
		if strings.HasSuffix(host, "."+base) {
			return true
		}
	}
	return false
}

// credentialService is the service in a request's credential scope
// (ACCESS/DATE/REGION/SERVICE/aws4_request), or "".
func credentialService(r *http.Request) string {
	cred := r.URL.Query().Get("X-Amz-Credential")
	if cred == "" {
		a := r.Header.Get("Authorization")
		i := strings.Index(a, "Credential=")
		if i < 0 {
			return ""
		}
		cred = a[i+len("Credential="):]
		if j := strings.IndexAny(cred, ", "); j >= 0 {
			cred = cred[:j]
		}
	}
	parts := strings.Split(cred, "/")
	if len(parts) != 5 {
		return ""
	}
	return parts[3]
}
