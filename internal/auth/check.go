package auth

import (
	"net/http"
	"slices"
)

// Check authenticates r as AWS does: its signature parsed, scoped to
// region and to one of services, made by a key Stratus knows, within the
// allowed skew (or before a presigned URL's expiry), over the request as
// received and its body. body is called only once who signed and when
// have been checked, so an unknown key or a stale request is refused
// without reading one. S3 requests (uriEscaped false) may leave the
// payload unsigned.
func (a *IAM) Check(r *http.Request, region string, services []string, body func() ([]byte, error)) (*Principal, error) {
	sig, err := ParseSignature(r)
	if err != nil {
		return nil, err
	}
	if sig.Region != region {
		return nil, errorf(ErrBadSignature, "Credential should be scoped to a valid region, not '%s'. This server answers for %s.", sig.Region, region)
	}
	if !slices.Contains(services, sig.Service) {
		return nil, errorf(ErrBadSignature, "Credential should be scoped to correct service: '%s', not '%s'.", services[0], sig.Service)
	}
	p, secret, err := a.Authenticate(sig)
	if err != nil {
		return nil, err
	}
	if err := sig.CheckTime(a.now()); err != nil {
		return nil, err
	}
	s3 := sig.Service == "s3"
	hash := sig.PayloadHash
	if !(hash == UnsignedPayload && (sig.Presigned || s3)) {
		b, err := body()
		if err != nil {
			return nil, err
		}
		sum := PayloadHash(b)
		if hash != "" && hash != sum {
			return nil, errorf(ErrBadSignature, "The provided 'x-amz-content-sha256' header does not match what was computed.")
		}
		hash = sum
	}
	if err := sig.Verify(r, secret, hash, !s3); err != nil {
		return nil, err
	}
	p.Secure = r.TLS != nil
	return p, nil
}
