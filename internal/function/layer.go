package function

import (
	"regexp"
	"strconv"
	"strings"
	"time"
)

// MaxLayers is how many layers a function may use, as on Lambda.
const MaxLayers = 5

// LayerRef is a layer version a function uses, as its configuration keeps
// it: its zip's storage key stays valid after the version is deleted, as
// on Lambda, where a function keeps the layers it was given.
type LayerRef struct {
	ARN          string `json:"arn"`
	CodeSize     int64  `json:"codeSize"`
	UnzippedSize int64  `json:"unzippedSize"`
	Key          string `json:"key"`
}

// LayerVersion is one published, immutable version of a layer.
type LayerVersion struct {
	Name                    string           `json:"name"`
	Version                 int              `json:"version"`
	Description             string           `json:"description,omitempty"`
	License                 string           `json:"license,omitempty"`
	Created                 time.Time        `json:"created"`
	CompatibleRuntimes      []string         `json:"compatibleRuntimes,omitempty"`
	CompatibleArchitectures []string         `json:"compatibleArchitectures,omitempty"`
	CodeSha256              string           `json:"codeSha256"`
	CodeSize                int64            `json:"codeSize"`
	UnzippedSize            int64            `json:"unzippedSize"`
	Policy                  []LayerStatement `json:"policy,omitempty"`
	// LastVersion, on a layer's counter record, is the highest version
	// number ever published: numbers are never reused.
	LastVersion int `json:"lastVersion,omitempty"`
}

// Key is the storage key of the layer's zip.
func (l *LayerVersion) Key() string { return LayerKey(l.CodeSha256) }

// LayerKey is the storage key of a layer zip of the given CodeSha256:
// apart from functions' keys, so that removing a function's code never
// removes a layer's.
func LayerKey(sha string) string { return "layer-" + ShaKey(sha) }

// LayerStatement is a statement of a layer version's policy.
type LayerStatement struct {
	Sid            string `json:"sid"`
	Action         string `json:"action"`
	Principal      string `json:"principal"`
	OrganizationID string `json:"organizationId,omitempty"`
}

var layerNameRE = regexp.MustCompile(`^[a-zA-Z0-9-_]{1,64}$`)

// ValidateLayerName checks a layer's name as Lambda does.
func ValidateLayerName(name string) error {
	if !layerNameRE.MatchString(name) {
		return Errorf(ErrInvalid, "1 validation error detected: Value '%s' at 'layerName' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9-_]+", name)
	}
	return nil
}

// LayerARN is a layer's ARN; LayerVersionARN a version's.
func LayerARN(region, name string) string {
	return "arn:aws:lambda:" + region + ":" + AccountID + ":layer:" + name
}

func LayerVersionARN(region, name string, version int) string {
	return LayerARN(region, name) + ":" + strconv.Itoa(version)
}

// ParseLayerVersionARN reads a layer version's name and number from its ARN.
func ParseLayerVersionARN(arn string) (name string, version int, err error) {
	parts := strings.Split(arn, ":")
	if len(parts) != 8 || parts[0] != "arn" || parts[2] != "lambda" || parts[5] != "layer" {
		return "", 0, Errorf(ErrInvalid, "Layer version arn %s is not valid: it must be arn:aws:lambda:REGION:ACCOUNT:layer:NAME:VERSION", arn)
	}
	v, err := strconv.Atoi(parts[7])
	if err != nil || v < 1 {
		return "", 0, Errorf(ErrInvalid, "Layer version arn %s is not valid: the version must be a positive number", arn)
	}
	return parts[6], v, ValidateLayerName(parts[6])
}
