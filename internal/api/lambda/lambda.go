// Package lambda speaks AWS Lambda's REST-JSON API: the control plane for
// functions and the Invoke operation. It decodes requests, calls the
// registry and the invoker, and encodes answers and AWS error documents.
// It holds no business logic.
package lambda

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/stratus-faas/stratus/internal/auth"
	"github.com/stratus-faas/stratus/internal/esm"
	"github.com/stratus-faas/stratus/internal/function"
	"github.com/stratus-faas/stratus/internal/invoke"
	"github.com/stratus-faas/stratus/internal/recursion"
	"github.com/stratus-faas/stratus/internal/registry"
)

// maxControlBody bounds a control-plane request: a 50 MB zip in base64
// plus the JSON around it.
const maxControlBody = 69905067

var errBadBody = errors.New("bad request body")

// Options configure the API.
type Options struct {
	Region   string
	Endpoint string // public base URL of this API, for code download links
	Gateway  string // public base URL of the HTTP trigger listener
	Async    AsyncInvoker
	Mappings *esm.Manager
	// Auth decides what each caller may do, with the functions' resource
	// policies; nil allows nothing.
	Auth Authorizer
	// URLs signs the code links GetFunction hands out.
	URLs URLSigner
	// Roles checks a function's execution role; nil allows none.
	Roles RoleChecker
	// Packages reads deployment packages from S3 (Code.S3Bucket); nil:
	// there is no S3.
	Packages PackageReader
	// Runtimes says whether a runtime can run on this host; nil: all can.
	Runtimes interface{ Check(runtime string) error }
}

// PackageReader reads an object of at most max bytes.
type PackageReader interface {
	ReadObject(ctx context.Context, bucket, key string, max int64) ([]byte, error)
}

// RoleChecker checks that a role can be a function's execution role and
// that the caller may pass it.
type RoleChecker interface {
	ExecutionRole(ctx context.Context, arn string) error
	// RoleAllows: may the role perform action on resource by its own
	// policies (a *auth.Denied if not)?
	RoleAllows(roleARN, action, resource string) error
}

// roleMay checks, as Lambda does when a trigger, destination or
// dead-letter queue is configured, that the function's execution role may
// call each action on target; else Lambda's InvalidParameterValue.
func (a *API) roleMay(role, target string, actions ...string) error {
	if a.opts.Roles == nil {
		return function.Errorf(function.ErrInvalid, "The provided execution role does not have permissions to call %s", actions[0])
	}
	for _, action := range actions {
		if err := a.opts.Roles.RoleAllows(role, action, target); err != nil {
			svc, op, _ := strings.Cut(action, ":")
			return function.Errorf(function.ErrInvalid, "The provided execution role does not have permissions to call %s on %s", op, strings.ToUpper(svc))
		}
	}
	return nil
}

// deliveryActions are what sending to a destination takes.
func deliveryActions(target string) []string {
	if strings.HasPrefix(target, "arn:aws:lambda:") {
		return []string{"lambda:InvokeFunction"}
	}
	return []string{"sqs:SendMessage"}
}

func (a *API) checkRole(ctx context.Context, arn string) error {
	if a.opts.Roles == nil {
		return function.Errorf(function.ErrInvalid, "The role defined for the function cannot be assumed by Lambda.")
	}
	err := a.opts.Roles.ExecutionRole(ctx, arn)
	if errors.Is(err, auth.ErrCannotAssume) {
		return function.Errorf(function.ErrInvalid, "The role defined for the function cannot be assumed by Lambda.")
	}
	return err
}

// Authorizer decides with identity and resource policies.
type Authorizer interface {
	auth.Authorizer
	AuthorizeWith(ctx context.Context, resourcePolicy *auth.Policy, action, resource string, conds ...auth.Cond) error
}

// URLSigner signs a path for a fetch without credentials until expires.
type URLSigner interface {
	SignURL(path string, expires time.Time) string
}

// codeLocation is a link to a function's code, valid for 10 minutes as
// Lambda's presigned S3 URLs are.
func (a *API) codeLocation(key string) string {
	path := "/stratus/v1/code/" + key
	loc := strings.TrimRight(a.opts.Endpoint, "/") + path
	if a.opts.URLs == nil {
		return loc
	}
	exp := time.Now().Add(10 * time.Minute).Truncate(time.Second)
	return loc + "?X-Stratus-Expires=" + strconv.FormatInt(exp.Unix(), 10) + "&X-Stratus-Signature=" + a.opts.URLs.SignURL(path, exp)
}

// AsyncInvoker accepts asynchronous invocations (InvocationType Event).
type AsyncInvoker interface {
	Enqueue(ctx context.Context, ref, qualifier string, payload []byte) (requestID string, err error)
}

// API serves the Lambda API.
type API struct {
	reg  *registry.Registry
	inv  *invoke.Invoker
	log  *slog.Logger
	opts Options
}

// New returns the API.
func New(reg *registry.Registry, inv *invoke.Invoker, log *slog.Logger, opts Options) *API {
	return &API{reg: reg, inv: inv, log: log, opts: opts}
}

// Register adds the routes to mux.
func (a *API) Register(mux *http.ServeMux) {
	const fns = "/2015-03-31/functions"
	mux.HandleFunc("POST "+fns, a.h("CreateFunction", a.createFunction))
	mux.HandleFunc("POST "+fns+"/{$}", a.h("CreateFunction", a.createFunction))
	mux.HandleFunc("GET "+fns, a.h("ListFunctions", a.listFunctions))
	mux.HandleFunc("GET "+fns+"/{$}", a.h("ListFunctions", a.listFunctions))
	mux.HandleFunc("GET "+fns+"/{name}", a.h("GetFunction", a.getFunction))
	mux.HandleFunc("DELETE "+fns+"/{name}", a.h("DeleteFunction", a.deleteFunction))
	mux.HandleFunc("GET "+fns+"/{name}/configuration", a.h("GetFunctionConfiguration", a.getFunctionConfiguration))
	mux.HandleFunc("PUT "+fns+"/{name}/configuration", a.h("UpdateFunctionConfiguration", a.updateFunctionConfiguration))
	mux.HandleFunc("PUT "+fns+"/{name}/code", a.h("UpdateFunctionCode", a.updateFunctionCode))
	mux.HandleFunc("POST "+fns+"/{name}/invocations", a.h("InvokeFunction", a.invoke))
	// InvokeWithResponseStream is allowed by lambda:InvokeFunction, as on AWS.
	mux.HandleFunc("POST /2021-11-15/functions/{name}/response-streaming-invocations", a.h("InvokeFunction", a.invokeStream))
	mux.HandleFunc("GET /2020-06-30/functions/{name}/code-signing-config", a.h("GetFunctionCodeSigningConfig", a.getCodeSigning))
	mux.HandleFunc("GET /2016-08-19/account-settings", a.h("GetAccountSettings", a.accountSettings))
	mux.HandleFunc("GET /2016-08-19/account-settings/{$}", a.h("GetAccountSettings", a.accountSettings))
	a.registerVersions(mux)
	a.registerLayers(mux)
	a.registerTags(mux)
	a.registerRecursion(mux)
	a.registerURLs(mux)
	a.registerEventConfig(mux)
	a.registerPolicy(mux)
	if a.opts.Mappings != nil {
		a.registerMappings(mux)
	}
}

// getCodeSigning answers that no code signing configuration applies:
// Stratus verifies no signatures on code (tools such as Terraform read
// this on every function).
func (a *API) getCodeSigning(w http.ResponseWriter, r *http.Request) error {
	name, err := a.existingFunction(r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]string{"CodeSigningConfigArn": "", "FunctionName": name})
	return nil
}

// Wire shapes.

type environment struct {
	Variables map[string]string `json:"Variables"`
}

type deadLetterConfig struct {
	TargetArn string `json:"TargetArn,omitempty"`
}

type ephemeralStorage struct {
	Size int `json:"Size"`
}

type functionConfiguration struct {
	FunctionName     string                  `json:"FunctionName"`
	FunctionArn      string                  `json:"FunctionArn"`
	Runtime          string                  `json:"Runtime"`
	Role             string                  `json:"Role"`
	Handler          string                  `json:"Handler"`
	CodeSize         int64                   `json:"CodeSize"`
	Description      string                  `json:"Description"`
	Timeout          int                     `json:"Timeout"`
	MemorySize       int                     `json:"MemorySize"`
	LastModified     string                  `json:"LastModified"`
	CodeSha256       string                  `json:"CodeSha256"`
	Version          string                  `json:"Version"`
	Environment      *environment            `json:"Environment,omitempty"`
	DeadLetterConfig *deadLetterConfig       `json:"DeadLetterConfig,omitempty"`
	TracingConfig    map[string]string       `json:"TracingConfig"`
	RevisionID       string                  `json:"RevisionId"`
	State            string                  `json:"State,omitempty"`
	LastUpdateStatus string                  `json:"LastUpdateStatus,omitempty"`
	PackageType      string                  `json:"PackageType"`
	Architectures    []string                `json:"Architectures"`
	EphemeralStorage ephemeralStorage        `json:"EphemeralStorage"`
	LoggingConfig    map[string]string       `json:"LoggingConfig"`
	SnapStart        map[string]string       `json:"SnapStart"`
	Layers           []layerOut              `json:"Layers,omitempty"`
	CapacityProvider *capacityProviderConfig `json:"CapacityProviderConfig,omitempty"`
}

type layerOut struct {
	Arn      string `json:"Arn"`
	CodeSize int64  `json:"CodeSize"`
}

func (a *API) configuration(fn *function.Function, withState bool) functionConfiguration {
	c := functionConfiguration{
		FunctionName:     fn.Name,
		FunctionArn:      function.ARN(a.opts.Region, fn.Name, fn.Version),
		Runtime:          fn.Runtime,
		Role:             fn.Role,
		Handler:          fn.Handler,
		CodeSize:         fn.CodeSize,
		Description:      fn.Description,
		Timeout:          fn.Timeout,
		MemorySize:       fn.MemorySize,
		LastModified:     fn.LastModified.UTC().Format("2006-01-02T15:04:05.000-0700"),
		CodeSha256:       fn.CodeSha256,
		Version:          fn.VersionLabel(),
		TracingConfig:    map[string]string{"Mode": "PassThrough"},
		Layers:           layersOut(fn.Layers),
		RevisionID:       fn.RevisionID,
		PackageType:      "Zip",
		Architectures:    []string{fn.Architecture},
		EphemeralStorage: ephemeralStorage{Size: fn.EphemeralStorage},
		LoggingConfig:    loggingOut(fn),
		SnapStart:        map[string]string{"ApplyOn": "None", "OptimizationStatus": "Off"},
		CapacityProvider: capacityOut(fn),
	}
	if len(fn.Environment) > 0 {
		c.Environment = &environment{Variables: fn.Environment}
	}
	if fn.DeadLetterTarget != "" {
		c.DeadLetterConfig = &deadLetterConfig{TargetArn: fn.DeadLetterTarget}
	}
	if withState {
		c.State, c.LastUpdateStatus = "Active", "Successful"
	}
	return c
}

type codeInput struct {
	ZipFile         []byte `json:"ZipFile"`
	S3Bucket        string `json:"S3Bucket"`
	S3Key           string `json:"S3Key"`
	S3ObjectVersion string `json:"S3ObjectVersion"`
	ImageURI        string `json:"ImageUri"`
}

// zip is the package: sent inline, or read from Stratus's own S3 with
// the caller's permission to read it, as Lambda reads it with the
// caller's.
func (a *API) zip(r *http.Request, c *codeInput) ([]byte, error) {
	switch {
	case c.ImageURI != "":
		return nil, function.Errorf(function.ErrInvalid, "container images (Code.ImageUri) are not supported by Stratus; deploy a .zip package")
	case c.S3Bucket != "" || c.S3Key != "":
		if c.S3Bucket == "" || c.S3Key == "" {
			return nil, function.Errorf(function.ErrInvalid, "Code.S3Bucket and Code.S3Key go together")
		}
		if c.S3ObjectVersion != "" && c.S3ObjectVersion != "null" {
			return nil, function.Errorf(function.ErrInvalid, "Error occurred while GetObject. S3 Error Code: NoSuchVersion. S3 Error Message: buckets here are not versioned; omit S3ObjectVersion")
		}
		if err := auth.Ask(r.Context(), a.opts.Auth, "s3:GetObject", "arn:aws:s3:::"+c.S3Bucket+"/"+c.S3Key); err != nil {
			return nil, err
		}
		if a.opts.Packages == nil {
			return nil, function.Errorf(function.ErrInvalid, "Error occurred while GetObject. S3 Error Code: NoSuchBucket. S3 Error Message: The specified bucket does not exist")
		}
		b, err := a.opts.Packages.ReadObject(r.Context(), c.S3Bucket, c.S3Key, function.MaxZipBytes)
		if err != nil {
			return nil, function.Errorf(function.ErrInvalid, "Error occurred while GetObject. S3 Error Code: %s", err.Error())
		}
		return b, nil
	case len(c.ZipFile) == 0:
		return nil, function.Errorf(function.ErrInvalid, "Code.ZipFile is required")
	}
	return c.ZipFile, nil
}

type createFunctionInput struct {
	FunctionName     string                  `json:"FunctionName"`
	Runtime          string                  `json:"Runtime"`
	Role             string                  `json:"Role"`
	Handler          string                  `json:"Handler"`
	Description      string                  `json:"Description"`
	Timeout          int                     `json:"Timeout"`
	MemorySize       int                     `json:"MemorySize"`
	Code             codeInput               `json:"Code"`
	Environment      *environment            `json:"Environment"`
	DeadLetterConfig *deadLetterConfig       `json:"DeadLetterConfig"`
	EphemeralStorage *ephemeralStorage       `json:"EphemeralStorage"`
	Architectures    []string                `json:"Architectures"`
	PackageType      string                  `json:"PackageType"`
	Tags             map[string]string       `json:"Tags"`
	Publish          bool                    `json:"Publish"`
	Layers           []string                `json:"Layers"`
	LoggingConfig    *loggingConfig          `json:"LoggingConfig"`
	CapacityProvider *capacityProviderConfig `json:"CapacityProviderConfig"`
	unsupported
}

// loggingConfig is LoggingConfig on the wire.
type loggingConfig struct {
	LogFormat           string `json:"LogFormat,omitempty"`
	ApplicationLogLevel string `json:"ApplicationLogLevel,omitempty"`
	SystemLogLevel      string `json:"SystemLogLevel,omitempty"`
	LogGroup            string `json:"LogGroup,omitempty"`
}

// logging reads LoggingConfig: a log group of its own is refused (the
// function's is /aws/lambda/NAME), the rest kept for Validate to check.
func (l *loggingConfig) logging(name string) (*function.LoggingConfig, error) {
	if l == nil {
		return nil, nil
	}
	if l.LogGroup != "" && l.LogGroup != function.LogGroup(name) {
		return nil, function.Errorf(function.ErrInvalid, "LoggingConfig.LogGroup %s is not supported by Stratus: a function logs to %s", l.LogGroup, function.LogGroup(name))
	}
	if *l == (loggingConfig{LogGroup: l.LogGroup}) {
		return nil, nil
	}
	return &function.LoggingConfig{LogFormat: l.LogFormat, ApplicationLogLevel: l.ApplicationLogLevel, SystemLogLevel: l.SystemLogLevel}, nil
}

// loggingOut is a function's LoggingConfig as Lambda answers it: in the
// JSON format with the levels that apply (INFO unless set).
func loggingOut(fn *function.Function) map[string]string {
	out := map[string]string{"LogFormat": "Text", "LogGroup": function.LogGroup(fn.Name)}
	if l := fn.Logging; l.JSON() {
		out["LogFormat"], out["ApplicationLogLevel"], out["SystemLogLevel"] = "JSON", "INFO", "INFO"
		if l.ApplicationLogLevel != "" {
			out["ApplicationLogLevel"] = l.ApplicationLogLevel
		}
		if l.SystemLogLevel != "" {
			out["SystemLogLevel"] = l.SystemLogLevel
		}
	}
	return out
}

// unsupported are request fields a function would depend on that
// Stratus does not have yet: refused by name rather than dropped, so that
// a function never deploys and then fails without them.
type unsupported struct {
	FileSystemConfigs    []json.RawMessage `json:"FileSystemConfigs"`
	CodeSigningConfigArn string            `json:"CodeSigningConfigArn"`
	ImageConfig          json.RawMessage   `json:"ImageConfig"`
}

func (u *unsupported) check() error {
	switch {
	case len(u.FileSystemConfigs) > 0:
		return function.Errorf(function.ErrInvalid, "FileSystemConfigs (EFS) are not supported by Stratus")
	case u.CodeSigningConfigArn != "":
		return function.Errorf(function.ErrInvalid, "CodeSigningConfigArn is not supported by Stratus: it signs no code")
	case len(u.ImageConfig) > 0 && string(u.ImageConfig) != "null":
		return function.Errorf(function.ErrInvalid, "ImageConfig is not supported by Stratus: it runs .zip packages")
	}
	return nil
}

func (a *API) createFunction(w http.ResponseWriter, r *http.Request) error {
	var in createFunctionInput
	if err := decode(r, &in, "CreateFunction"); err != nil {
		return a.at(in.FunctionName, err)
	}
	if err := in.check(); err != nil {
		return a.at(in.FunctionName, err)
	}
	if in.PackageType != "" && in.PackageType != "Zip" {
		return a.at(in.FunctionName, function.Errorf(function.ErrInvalid, "PackageType %s is not supported by Stratus; use Zip", in.PackageType))
	}
	name, q, err := function.ParseRef(in.FunctionName)
	if err == nil && q != "" {
		err = function.Errorf(function.ErrInvalid, "a function name for CreateFunction cannot carry a qualifier")
	}
	if err != nil {
		return a.at(in.FunctionName, err)
	}
	if err := a.checkRole(r.Context(), in.Role); err != nil {
		return a.at(name, err)
	}
	if err := a.checkRuntime(in.Runtime); err != nil {
		return a.at(name, err)
	}
	if in.Publish {
		if err := a.authorize(r, "lambda:PublishVersion", function.ARN(a.opts.Region, name, "")); err != nil {
			return a.at(name, err)
		}
	}
	zip, err := a.zip(r, &in.Code)
	if err != nil {
		return a.at(name, err)
	}
	layers, err := a.layers(r, in.Layers, zip)
	if err != nil {
		return a.at(name, err)
	}
	logging, err := in.LoggingConfig.logging(name)
	if err != nil {
		return a.at(name, err)
	}
	provider, err := in.CapacityProvider.provider()
	if err != nil {
		return a.at(name, err)
	}
	cfg := function.Config{
		CapacityProvider: provider,
		Logging:          logging,
		Layers:           layers,
		Name:             name,
		Runtime:          in.Runtime,
		Handler:          in.Handler,
		Role:             in.Role,
		Description:      in.Description,
		Timeout:          in.Timeout,
		MemorySize:       in.MemorySize,
		Tags:             in.Tags,
	}
	if in.Environment != nil {
		cfg.Environment = in.Environment.Variables
	}
	if in.EphemeralStorage != nil {
		cfg.EphemeralStorage = in.EphemeralStorage.Size
	}
	if in.DeadLetterConfig != nil {
		cfg.DeadLetterTarget = in.DeadLetterConfig.TargetArn
		if t := cfg.DeadLetterTarget; t != "" {
			if err := a.roleMay(in.Role, t, deliveryActions(t)...); err != nil {
				return a.at(name, err)
			}
		}
	}
	switch len(in.Architectures) {
	case 0:
	case 1:
		cfg.Architecture = in.Architectures[0]
	default:
		return a.at(name, function.Errorf(function.ErrInvalid, "Architectures takes exactly one value"))
	}
	fn, err := a.reg.Create(r.Context(), cfg, zip)
	if err != nil {
		return a.at(name, err)
	}
	if in.Publish {
		// As Lambda does: the answer is the version just published.
		if fn, err = a.reg.PublishVersion(r.Context(), name, "", "", ""); err != nil {
			return a.at(name, err)
		}
	}
	writeJSON(w, http.StatusCreated, a.configuration(fn, true))
	return nil
}

// checkRuntime refuses a runtime this host has no interpreter for, as
// Lambda refuses one it does not offer.
func (a *API) checkRuntime(runtime string) error {
	if a.opts.Runtimes == nil {
		return nil
	}
	return a.opts.Runtimes.Check(runtime)
}

func (a *API) getFunction(w http.ResponseWriter, r *http.Request) error {
	fn, ref, err := a.lookup(r)
	if err != nil {
		return a.at(ref, err)
	}
	conf := a.configuration(fn, true)
	// GetFunction may be allowed where the configuration is not: then
	// the environment's values (secrets, often) stay hidden.
	if a.authorize(r, "lambda:GetFunctionConfiguration", a.resource(r)) != nil {
		conf.Environment = nil
	}
	out := map[string]any{
		"Configuration": conf,
		"Code": map[string]string{
			"RepositoryType": "S3",
			"Location":       a.codeLocation(fn.CodeKey()),
		},
	}
	if len(fn.Tags) > 0 {
		out["Tags"] = fn.Tags
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) getFunctionConfiguration(w http.ResponseWriter, r *http.Request) error {
	fn, ref, err := a.lookup(r)
	if err != nil {
		return a.at(ref, err)
	}
	writeJSON(w, http.StatusOK, a.configuration(fn, true))
	return nil
}

// lookup resolves the {name} path element and the Qualifier query.
func (a *API) lookup(r *http.Request) (*function.Function, string, error) {
	ref := r.PathValue("name")
	fn, err := a.inv.Resolve(ref, r.URL.Query().Get("Qualifier"))
	return fn, ref, err
}

func (a *API) listFunctions(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	maxItems := 50
	if s := q.Get("MaxItems"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 10000 {
			return a.at("", function.Errorf(function.ErrInvalid, "MaxItems must be between 1 and 10000"))
		}
		maxItems = min(n, 50)
	}
	after := ""
	if m := q.Get("Marker"); m != "" {
		b, err := base64.RawURLEncoding.DecodeString(m)
		if err != nil {
			return a.at("", function.Errorf(function.ErrInvalid, "invalid Marker"))
		}
		after = string(b)
	}
	allVersions := false
	switch v := q.Get("FunctionVersion"); v {
	case "":
	case "ALL":
		allVersions = true
	default:
		return a.at("", function.Errorf(function.ErrInvalid, "1 validation error detected: Value '%s' at 'functionVersion' failed to satisfy constraint: Member must satisfy enum value set: [ALL]", v))
	}
	out := struct {
		Functions  []functionConfiguration `json:"Functions"`
		NextMarker string                  `json:"NextMarker,omitempty"`
	}{Functions: []functionConfiguration{}}
	// Each entry's key orders the listing and marks where a page ends:
	// the name, then (with FunctionVersion=ALL) the version's place.
	var lastKey string
	for _, latest := range a.reg.List() {
		fns := []*function.Function{latest}
		if allVersions {
			if vs, err := a.reg.Versions(latest.Name); err == nil {
				fns = vs
			}
		}
		for i, fn := range fns {
			key := latest.Name
			if allVersions {
				key += "\x00" + fmt.Sprintf("%06d", i)
			}
			if key <= after {
				continue
			}
			if len(out.Functions) == maxItems {
				out.NextMarker = base64.RawURLEncoding.EncodeToString([]byte(lastKey))
				writeJSON(w, http.StatusOK, out)
				return nil
			}
			out.Functions = append(out.Functions, a.configuration(fn, false))
			lastKey = key
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) deleteFunction(w http.ResponseWriter, r *http.Request) error {
	ref := r.PathValue("name")
	name, q, err := function.ParseRef(ref)
	if err == nil {
		if qq := r.URL.Query().Get("Qualifier"); qq != "" {
			q = qq
		}
		switch {
		case q == function.Latest:
			err = function.Errorf(function.ErrInvalid, "$LATEST version cannot be deleted without deleting the function.")
		case function.IsVersion(q):
			err = a.reg.DeleteVersion(r.Context(), name, q)
		case q != "":
			err = function.Errorf(registry.ErrNotFound, "%s", ref)
		default:
			err = a.reg.Delete(r.Context(), name)
		}
	}
	if err != nil {
		return a.at(ref, err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

type updateCodeInput struct {
	codeInput
	Publish       bool     `json:"Publish"`
	DryRun        bool     `json:"DryRun"`
	RevisionID    string   `json:"RevisionId"`
	Architectures []string `json:"Architectures"`
}

func (a *API) updateFunctionCode(w http.ResponseWriter, r *http.Request) error {
	ref := r.PathValue("name")
	var in updateCodeInput
	name, err := named(r, &in, "UpdateFunctionCode")
	if err != nil {
		return a.at(ref, err)
	}
	zip, err := a.zip(r, &in.codeInput)
	if err != nil {
		return a.at(ref, err)
	}
	if in.DryRun {
		fn, err := a.reg.Get(name)
		if err == nil {
			var pkg *function.Package
			if pkg, err = function.InspectZip(zip); err == nil {
				err = pkg.CheckHandler(fn.Runtime, fn.Handler)
			}
		}
		if err != nil {
			return a.at(ref, err)
		}
		writeJSON(w, http.StatusOK, a.configuration(fn, true))
		return nil
	}
	if in.Publish {
		if err := a.authorize(r, "lambda:PublishVersion", function.ARN(a.opts.Region, name, "")); err != nil {
			return a.at(ref, err)
		}
	}
	fn, err := a.reg.UpdateCode(r.Context(), name, in.RevisionID, zip)
	if err != nil {
		return a.at(ref, err)
	}
	if in.Publish {
		if fn, err = a.reg.PublishVersion(r.Context(), name, "", "", ""); err != nil {
			return a.at(ref, err)
		}
	}
	writeJSON(w, http.StatusOK, a.configuration(fn, true))
	return nil
}

type updateConfigInput struct {
	unsupported
	Runtime          *string                 `json:"Runtime"`
	Role             *string                 `json:"Role"`
	Handler          *string                 `json:"Handler"`
	Description      *string                 `json:"Description"`
	Timeout          *int                    `json:"Timeout"`
	MemorySize       *int                    `json:"MemorySize"`
	Environment      *environment            `json:"Environment"`
	DeadLetterConfig *deadLetterConfig       `json:"DeadLetterConfig"`
	EphemeralStorage *ephemeralStorage       `json:"EphemeralStorage"`
	RevisionID       string                  `json:"RevisionId"`
	Layers           *[]string               `json:"Layers"`
	LoggingConfig    *loggingConfig          `json:"LoggingConfig"`
	CapacityProvider *capacityProviderConfig `json:"CapacityProviderConfig"`
}

func (a *API) updateFunctionConfiguration(w http.ResponseWriter, r *http.Request) error {
	ref := r.PathValue("name")
	var in updateConfigInput
	name, err := named(r, &in, "UpdateFunctionConfiguration")
	if err != nil {
		return a.at(ref, err)
	}
	if err := in.check(); err != nil {
		return a.at(ref, err)
	}
	if in.Role != nil {
		if err := a.checkRole(r.Context(), *in.Role); err != nil {
			return a.at(ref, err)
		}
	}
	if in.Runtime != nil {
		if err := a.checkRuntime(*in.Runtime); err != nil {
			return a.at(ref, err)
		}
	}
	if in.DeadLetterConfig != nil && in.DeadLetterConfig.TargetArn != "" {
		role := ""
		if in.Role != nil {
			role = *in.Role
		} else if cur, err := a.reg.Get(name); err == nil {
			role = cur.Role
		}
		if err := a.roleMay(role, in.DeadLetterConfig.TargetArn, deliveryActions(in.DeadLetterConfig.TargetArn)...); err != nil {
			return a.at(ref, err)
		}
	}
	var layers []function.LayerRef
	if in.Layers != nil {
		var zip []byte
		if cur, err := a.reg.Get(name); err == nil {
			zip, _ = a.reg.CodeZip(r.Context(), cur.CodeKey())
		}
		if layers, err = a.layers(r, *in.Layers, zip); err != nil {
			return a.at(ref, err)
		}
	}
	if _, err := in.LoggingConfig.logging(name); err != nil {
		return a.at(ref, err)
	}
	provider, err := in.CapacityProvider.provider()
	if err != nil {
		return a.at(ref, err)
	}
	fn, err := a.reg.UpdateConfig(r.Context(), name, in.RevisionID, func(c *function.Config) {
		if provider != nil {
			c.CapacityProvider = provider
		}
		if in.Layers != nil {
			c.Layers = layers
		}
		if l := in.LoggingConfig; l != nil {
			// The fields given change; Text drops the levels.
			next := function.LoggingConfig{}
			if c.Logging != nil {
				next = *c.Logging
			}
			if l.LogFormat != "" {
				next.LogFormat = l.LogFormat
			}
			if l.ApplicationLogLevel != "" {
				next.ApplicationLogLevel = l.ApplicationLogLevel
			}
			if l.SystemLogLevel != "" {
				next.SystemLogLevel = l.SystemLogLevel
			}
			if next.LogFormat == "Text" && l.ApplicationLogLevel == "" && l.SystemLogLevel == "" {
				next.ApplicationLogLevel, next.SystemLogLevel = "", ""
			}
			c.Logging = &next
		}
		if in.Runtime != nil {
			c.Runtime = *in.Runtime
		}
		if in.Role != nil {
			c.Role = *in.Role
		}
		if in.Handler != nil {
			c.Handler = *in.Handler
		}
		if in.Description != nil {
			c.Description = *in.Description
		}
		if in.Timeout != nil {
			c.Timeout = *in.Timeout
			if c.Timeout == 0 {
				c.Timeout = -1 // explicit zero is out of range, not "default"
			}
		}
		if in.MemorySize != nil {
			c.MemorySize = *in.MemorySize
			if c.MemorySize == 0 {
				c.MemorySize = -1
			}
		}
		if in.Environment != nil {
			// Lambda replaces the whole map.
			c.Environment = in.Environment.Variables
		}
		if in.DeadLetterConfig != nil {
			c.DeadLetterTarget = in.DeadLetterConfig.TargetArn
		}
		if in.EphemeralStorage != nil {
			c.EphemeralStorage = in.EphemeralStorage.Size
			if c.EphemeralStorage == 0 {
				c.EphemeralStorage = -1
			}
		}
	})
	if err != nil {
		return a.at(ref, err)
	}
	writeJSON(w, http.StatusOK, a.configuration(fn, true))
	return nil
}

// named reads the request body into in, then the path's function name
// as bareName does.
func named(r *http.Request, in any, op string) (string, error) {
	if err := decode(r, in, op); err != nil {
		return "", err
	}
	return bareName(r.PathValue("name"))
}

// bareName accepts a name or ARN without a qualifier, as the update
// operations do.
func bareName(ref string) (string, error) {
	name, q, err := function.ParseRef(ref)
	if err != nil {
		return "", err
	}
	if q != "" && q != function.Latest {
		return "", function.Errorf(function.ErrInvalid, "only $LATEST can be updated")
	}
	return name, nil
}

func (a *API) accountSettings(w http.ResponseWriter, _ *http.Request) error {
	var size int64
	fns := a.reg.List()
	for _, fn := range fns {
		size += fn.CodeSize
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"AccountLimit": map[string]any{
			"TotalCodeSize":                  int64(80530636800),
			"CodeSizeUnzipped":               function.MaxUnzippedBytes,
			"CodeSizeZipped":                 function.MaxZipBytes,
			"ConcurrentExecutions":           a.inv.MaxConcurrency(),
			"UnreservedConcurrentExecutions": a.inv.MaxConcurrency() - int64(a.reg.ReservedTotal()),
		},
		"AccountUsage": map[string]any{
			"TotalCodeSize": size,
			"FunctionCount": len(fns),
			// Not in Lambda's shape: what runs now, for operators.
			"ConcurrentExecutions": a.inv.InFlight(),
		},
	})
	return nil
}

func (a *API) invoke(w http.ResponseWriter, r *http.Request) error {
	ref := r.PathValue("name")
	if r.ContentLength > function.MaxSyncPayload {
		return a.at(ref, function.Errorf(function.ErrTooLarge, "Request must be smaller than %d bytes for the InvokeFunction operation", function.MaxSyncPayload))
	}
	payload, err := readLimited(r.Body, r.ContentLength, function.MaxSyncPayload)
	if err != nil {
		return a.at(ref, err)
	}
	h := r.Header
	if h.Get("X-Amz-Invocation-Type") == invoke.Event && a.opts.Async != nil {
		if len(payload) > function.MaxAsyncPayload {
			return a.at(ref, function.Errorf(function.ErrTooLarge, "Request must be smaller than %d bytes for the InvokeFunction operation", function.MaxAsyncPayload))
		}
		ctx := recursion.WithTrace(r.Context(), h.Get("X-Amzn-Trace-Id"))
		id, err := a.opts.Async.Enqueue(ctx, ref, r.URL.Query().Get("Qualifier"), payload)
		if err != nil {
			return a.at(ref, err)
		}
		w.Header()["X-Amzn-Requestid"] = []string{id}
		w.WriteHeader(http.StatusAccepted)
		return nil
	}
	resp, err := a.inv.Invoke(r.Context(), invoke.Request{
		FunctionName:  ref,
		Qualifier:     r.URL.Query().Get("Qualifier"),
		Payload:       payload,
		Type:          h.Get("X-Amz-Invocation-Type"),
		LogTail:       h.Get("X-Amz-Log-Type") == "Tail",
		ClientContext: h.Get("X-Amz-Client-Context"),
		TraceID:       h.Get("X-Amzn-Trace-Id"),
	})
	if err != nil {
		return a.at(ref, err)
	}
	out := w.Header()
	out["Content-Type"] = []string{"application/json"}
	out["X-Amz-Executed-Version"] = []string{resp.ExecutedVersion}
	if resp.RequestID != "" {
		out["X-Amzn-Requestid"] = []string{resp.RequestID}
	}
	if fe := resp.FunctionError(); fe != "" {
		out["X-Amz-Function-Error"] = []string{fe}
	}
	if resp.LogResult != "" {
		out["X-Amz-Log-Result"] = []string{resp.LogResult}
	}
	out["Content-Length"] = []string{strconv.Itoa(len(resp.Payload))}
	w.WriteHeader(resp.Status)
	_, _ = w.Write(resp.Payload)
	return nil
}

// readLimited reads a body of at most limit bytes.
func readLimited(r io.Reader, size int64, limit int) ([]byte, error) {
	b, err := readAll(r, size, limit)
	if err != nil {
		return nil, function.Errorf(errBadBody, "%v", err)
	}
	if len(b) > limit {
		return nil, function.Errorf(function.ErrTooLarge, "Request must be smaller than %d bytes for the InvokeFunction operation", limit)
	}
	return b, nil
}

// readAll reads at most limit+1 bytes, into one allocation of the body's
// size when it is known (io.ReadAll doubles its buffer as it goes: a
// 66 MB body would take 128 MB).
func readAll(r io.Reader, size int64, limit int) ([]byte, error) {
	// A body the server read whole to check its signature is taken as is.
	if b, ok := r.(interface{ Bytes() []byte }); ok {
		if out := b.Bytes(); len(out) <= limit {
			return out, nil
		}
		return b.Bytes()[:limit+1], nil
	}
	var buf bytes.Buffer
	if size > 0 && size <= int64(limit) {
		buf.Grow(int(size) + 1)
	}
	_, err := buf.ReadFrom(io.LimitReader(r, int64(limit)+1))
	return buf.Bytes(), err
}

func decode(r *http.Request, v any, op string) error {
	if r.ContentLength > maxControlBody {
		return function.Errorf(function.ErrTooLarge, "Request must be smaller than %d bytes for the %s operation", maxControlBody, op)
	}
	b, err := readAll(r.Body, r.ContentLength, maxControlBody)
	if err != nil {
		return function.Errorf(errBadBody, "%v", err)
	}
	if len(b) > maxControlBody {
		return function.Errorf(function.ErrTooLarge, "Request must be smaller than %d bytes for the %s operation", maxControlBody, op)
	}
	if len(b) == 0 {
		return nil
	}
	if err := json.Unmarshal(b, v); err != nil {
		return function.Errorf(errBadBody, "%v", err)
	}
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
