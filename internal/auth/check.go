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
// without reading one. The body of an S3 request is never read here: the
// principal's Payload says how its API must check it while reading.
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
	if sig.Service == "s3" {
		// The signature covers the hash the client names; the body is
		// checked against it as the API reads it (see Payload).
		pl, ok := s3Payload(r, sig, secret, sig.PayloadHash)
		if !ok && !sig.Presigned {
			return nil, errorf(ErrMalformed, "The provided 'x-amz-content-sha256' header must be a valid SHA256.")
		}
		hash := sig.PayloadHash
		if sig.Presigned && hash == "" {
			hash, pl = UnsignedPayload, &Payload{}
		}
		if err := sig.Verify(r, secret, hash, false); err != nil {
			return nil, err
		}
		p.Secure = r.TLS != nil
		p.Payload = pl
		return p, nil
	}
	hash := sig.PayloadHash
	if !(hash == UnsignedPayload && sig.Presigned) {
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
	if err := sig.Verify(r, secret, hash, true); err != nil {
		return nil, err
	}
	p.Secure = r.TLS != nil
	return p, nil
}
