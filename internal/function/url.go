package function

import "time"

// URLConfig is a function URL: an HTTP endpoint that invokes a function
// (or one of its aliases) with the HTTP API payload format 2.0.
type URLConfig struct {
	ID           string    `json:"id"` // the url-id in the URL, lower-case letters and digits
	Function     string    `json:"function"`
	Qualifier    string    `json:"qualifier,omitempty"` // alias, or empty for $LATEST
	AuthType     string    `json:"authType"`
	InvokeMode   string    `json:"invokeMode"`
	Cors         *Cors     `json:"cors,omitempty"`
	Created      time.Time `json:"created"`
	LastModified time.Time `json:"lastModified"`
}

// Cors is a function URL's cross-origin resource sharing settings.
type Cors struct {
	AllowCredentials bool     `json:"AllowCredentials,omitempty"`
	AllowHeaders     []string `json:"AllowHeaders,omitempty"`
	AllowMethods     []string `json:"AllowMethods,omitempty"`
	AllowOrigins     []string `json:"AllowOrigins,omitempty"`
	ExposeHeaders    []string `json:"ExposeHeaders,omitempty"`
	MaxAge           int      `json:"MaxAge,omitempty"`
}

// A function URL's AuthType.
const (
	URLAuthNone = "NONE"
	URLAuthIAM  = "AWS_IAM"
)

// Validate checks a URL configuration as Lambda does.
func (u *URLConfig) Validate() error {
	switch u.AuthType {
	case URLAuthNone, URLAuthIAM:
	default:
		return invalidf("Value '%s' at 'authType' failed to satisfy constraint: Member must satisfy enum value set: [NONE, AWS_IAM]", u.AuthType)
	}
	switch u.InvokeMode {
	case "", "BUFFERED":
		u.InvokeMode = "BUFFERED"
	case "RESPONSE_STREAM":
	default:
		return invalidf("Value '%s' at 'invokeMode' failed to satisfy constraint: Member must satisfy enum value set: [BUFFERED, RESPONSE_STREAM]", u.InvokeMode)
	}
	if c := u.Cors; c != nil {
		if len(c.AllowMethods) > 6 {
			return invalidf("Cors.AllowMethods takes at most 6 methods")
		}
		if c.MaxAge < 0 || c.MaxAge > 86400 {
			return invalidf("Cors.MaxAge must be between 0 and 86400")
		}
	}
	return nil
}
