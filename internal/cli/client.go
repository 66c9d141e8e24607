package cli

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"

	cfgpkg "github.com/stratus-faas/stratus/internal/config"
	"github.com/stratus-faas/stratus/internal/function"
)

// clientFlags are shared by every client command.
type clientFlags struct {
	endpoint string
	region   string
	profile  string
}

func (c *clientFlags) bind(fs *flag.FlagSet) {
	def := os.Getenv("STRATUS_ENDPOINT")
	if def == "" {
		def = "http://127.0.0.1:9000"
	}
	fs.StringVar(&c.endpoint, "endpoint", def, "Stratus API endpoint")
	fs.StringVar(&c.region, "region", "us-east-1", "region of the server")
	fs.StringVar(&c.profile, "profile", "", "AWS profile that signs requests (default: AWS_PROFILE or AWS_ACCESS_KEY_ID from the environment, else the server's root profile in its default data folder)")
}

// credentials finds what signs requests, as the AWS CLI would (a
// profile, the environment), falling back to the root profile a server
// with the default data folder wrote.
func (c *clientFlags) credentials(ctx context.Context) (aws.CredentialsProvider, error) {
	// No instance metadata service: this is not EC2, and asking it costs
	// seconds of timeouts before a clear error.
	opts := []func(*config.LoadOptions) error{config.WithRegion(c.region), config.WithEC2IMDSClientEnableState(imds.ClientDisabled)}
	switch {
	case c.profile != "":
		opts = append(opts, config.WithSharedConfigProfile(c.profile))
	case os.Getenv("AWS_PROFILE") == "" && os.Getenv("AWS_ACCESS_KEY_ID") == "":
		root := filepath.Join(cfgpkg.DefaultDataDir(), "credentials")
		if _, err := os.Stat(root); err == nil {
			opts = append(opts, config.WithSharedCredentialsFiles([]string{root}), config.WithSharedConfigProfile(serverProfile))
		}
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("find credentials: %w", err)
	}
	if _, err := awsCfg.Credentials.Retrieve(ctx); err != nil {
		// The SDK's own chain of reasons (every provider it tried) says
		// less than where the key should be.
		return nil, fmt.Errorf("no credentials to sign requests with: start the server once (it writes its root profile to its data folder, %s by default or $STRATUS_DATA_DIR), or set AWS_PROFILE or --profile", cfgpkg.DefaultDataDir())
	}
	return awsCfg.Credentials, nil
}

// serverProfile is the profile the server writes its root key under.
const serverProfile = "stratus"

func (c *clientFlags) lambda(ctx context.Context) (*lambda.Client, error) {
	creds, err := c.credentials(ctx)
	if err != nil {
		return nil, err
	}
	return lambda.New(lambda.Options{
		Region:       c.region,
		BaseEndpoint: aws.String(strings.TrimRight(c.endpoint, "/")),
		Credentials:  creds,
	}), nil
}

// envFlag collects repeated KEY=VALUE flags.
type envFlag map[string]string

func (e envFlag) String() string { return "" }

func (e envFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("want KEY=VALUE, got %q", s)
	}
	e[k] = v
	return nil
}

func runDeploy(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "deploy", usageOf("deploy"))
	var cf clientFlags
	cf.bind(fs)
	runtime := fs.String("runtime", "", "runtime, such as provided.al2023, nodejs20.x or python3.11 (guessed from the files when empty)")
	handler := fs.String("handler", "", "handler (default bootstrap, index.handler or lambda_function.lambda_handler by runtime)")
	memory := fs.Int("memory", 0, "memory in MB, 128 to 10240 (default 128)")
	timeout := fs.Int("timeout", 0, "timeout in seconds, 1 to 900 (default 3)")
	tmp := fs.Int("ephemeral-storage", 0, "size of /tmp in MB, 512 to 10240 (default 512)")
	desc := fs.String("description", "", "description")
	idle := fs.Duration("idle-timeout", 0, "keep idle instances this long (default: the server's)")
	vars := envFlag{}
	fs.Var(vars, "env", "environment variable KEY=VALUE (repeatable); replaces all variables when given")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return usagef("want NAME and PATH; usage: %s", usageOf("deploy"))
	}
	name, path := pos[0], pos[1]
	if err := function.ValidateName(name); err != nil {
		return usagef("invalid function name %q: names use letters, digits, - and _, at most 64", name)
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	zipData, files, err := loadPackage(path)
	if err != nil {
		return err
	}
	if *runtime == "" {
		if *runtime, err = guessRuntime(files); err != nil {
			return err
		}
	}
	if *handler == "" {
		*handler = defaultHandler(*runtime)
	}
	fmt.Fprintf(env.Stderr, "deploying %s: %s package, %s, runtime %s, handler %s\n", name, humanBytes(len(zipData)), path, *runtime, *handler)
	start := time.Now()
	client, err := cf.lambda(ctx)
	if err != nil {
		return err
	}
	_, err = client.GetFunction(ctx, &lambda.GetFunctionInput{FunctionName: &name})
	var nf *types.ResourceNotFoundException
	switch {
	case errors.As(err, &nf):
		in := &lambda.CreateFunctionInput{
			FunctionName: &name,
			Runtime:      types.Runtime(*runtime),
			Handler:      handler,
			Role:         aws.String("arn:aws:iam::" + function.AccountID + ":role/stratus-function"),
			Code:         &types.FunctionCode{ZipFile: zipData},
		}
		if set["memory"] {
			in.MemorySize = aws.Int32(int32(*memory))
		}
		if set["timeout"] {
			in.Timeout = aws.Int32(int32(*timeout))
		}
		if set["ephemeral-storage"] {
			in.EphemeralStorage = &types.EphemeralStorage{Size: aws.Int32(int32(*tmp))}
		}
		if set["description"] {
			in.Description = desc
		}
		if set["env"] {
			in.Environment = &types.Environment{Variables: vars}
		}
		if set["idle-timeout"] {
			in.Tags = map[string]string{function.TagIdleTimeout: idle.String()}
		}
		fmt.Fprintf(env.Stderr, "uploading %s ... ", humanBytes(len(zipData)))
		out, err := client.CreateFunction(ctx, in)
		if err != nil {
			fmt.Fprintln(env.Stderr, "failed")
			return err
		}
		fmt.Fprintf(env.Stderr, "created %s in %s\n", aws.ToString(out.FunctionArn), time.Since(start).Round(time.Millisecond))
		return nil
	case err != nil:
		return err
	}
	fmt.Fprintf(env.Stderr, "uploading %s ... ", humanBytes(len(zipData)))
	if _, err := client.UpdateFunctionCode(ctx, &lambda.UpdateFunctionCodeInput{FunctionName: &name, ZipFile: zipData}); err != nil {
		fmt.Fprintln(env.Stderr, "failed")
		return err
	}
	upd := &lambda.UpdateFunctionConfigurationInput{FunctionName: &name}
	changed := false
	if set["runtime"] {
		upd.Runtime, changed = types.Runtime(*runtime), true
	}
	if set["handler"] {
		upd.Handler, changed = handler, true
	}
	if set["memory"] {
		upd.MemorySize, changed = aws.Int32(int32(*memory)), true
	}
	if set["timeout"] {
		upd.Timeout, changed = aws.Int32(int32(*timeout)), true
	}
	if set["ephemeral-storage"] {
		upd.EphemeralStorage, changed = &types.EphemeralStorage{Size: aws.Int32(int32(*tmp))}, true
	}
	if set["description"] {
		upd.Description, changed = desc, true
	}
	if set["env"] {
		upd.Environment, changed = &types.Environment{Variables: vars}, true
	}
	if changed {
		if _, err := client.UpdateFunctionConfiguration(ctx, upd); err != nil {
			fmt.Fprintln(env.Stderr, "failed")
			return err
		}
	}
	fmt.Fprintf(env.Stderr, "updated %s in %s\n", name, time.Since(start).Round(time.Millisecond))
	return nil
}

// loadPackage reads a .zip, or zips a folder in memory.
func loadPackage(path string) ([]byte, []string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, nil, err
	}
	if !st.IsDir() {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, nil, err
		}
		zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			return nil, nil, fmt.Errorf("%s is not a zip file: %w", path, err)
		}
		var files []string
		for _, f := range zr.File {
			files = append(files, f.Name)
		}
		return data, files, nil
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	var files []string
	err = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(path, p)
		if err != nil || rel == "." {
			return err
		}
		if d.IsDir() {
			if d.Name() == ".git" {
				return filepath.SkipDir
			}
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if !info.Mode().IsRegular() {
			return nil
		}
		hdr, err := zip.FileInfoHeader(info)
		if err != nil {
			return err
		}
		hdr.Name = filepath.ToSlash(rel)
		hdr.Method = zip.Deflate
		w, err := zw.CreateHeader(hdr)
		if err != nil {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(w, f)
		files = append(files, hdr.Name)
		return err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("package %s: %w", path, err)
	}
	if err := zw.Close(); err != nil {
		return nil, nil, err
	}
	return buf.Bytes(), files, nil
}

func guessRuntime(files []string) (string, error) {
	has := func(pred func(string) bool) bool {
		for _, f := range files {
			if pred(f) {
				return true
			}
		}
		return false
	}
	switch {
	case has(func(f string) bool { return f == "bootstrap" }):
		return "provided.al2023", nil
	case has(func(f string) bool { return strings.HasSuffix(f, ".py") }):
		if out, err := exec.Command("python3", "-c", "import sys; print('python%d.%d' % sys.version_info[:2])").Output(); err == nil {
			if r := strings.TrimSpace(string(out)); function.Supported(r) {
				return r, nil
			}
		}
		return "python3.12", nil
	case has(func(f string) bool {
		return strings.HasSuffix(f, ".js") || strings.HasSuffix(f, ".mjs") || strings.HasSuffix(f, ".cjs")
	}):
		if out, err := exec.Command("node", "-p", "process.versions.node.split('.')[0]").Output(); err == nil {
			if r := "nodejs" + strings.TrimSpace(string(out)) + ".x"; function.Supported(r) {
				return r, nil
			}
		}
		return "nodejs20.x", nil
	}
	return "", usagef("cannot tell the runtime from the files; pass --runtime")
}

func defaultHandler(runtime string) string {
	switch function.Family(runtime) {
	case function.FamilyNode:
		return "index.handler"
	case function.FamilyPython:
		return "lambda_function.lambda_handler"
	}
	return "bootstrap"
}

func humanBytes(n int) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func runInvoke(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "invoke", usageOf("invoke"))
	var cf clientFlags
	cf.bind(fs)
	qualifier := fs.String("qualifier", "", "version or alias")
	showLog := fs.Bool("log", false, "print the tail of the invocation's log to stderr")
	async := fs.Bool("async", false, "queue the invocation (InvocationType Event) and print its request id")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) < 1 || len(pos) > 2 {
		return usagef("usage: %s", usageOf("invoke"))
	}
	var payload []byte
	if len(pos) == 2 {
		if pos[1] == "-" {
			if payload, err = io.ReadAll(env.Stdin); err != nil {
				return err
			}
		} else {
			payload = []byte(pos[1])
		}
	}
	in := &lambda.InvokeInput{FunctionName: &pos[0], Payload: payload}
	if *qualifier != "" {
		in.Qualifier = qualifier
	}
	if *showLog {
		in.LogType = types.LogTypeTail
	}
	if *async {
		if *showLog {
			return usagef("--log needs the invocation's answer; it cannot go with --async")
		}
		in.InvocationType = types.InvocationTypeEvent
	}
	client, err := cf.lambda(ctx)
	if err != nil {
		return err
	}
	out, err := client.Invoke(ctx, in)
	if err != nil {
		return err
	}
	if *async {
		id, _ := awsmiddleware.GetRequestIDMetadata(out.ResultMetadata)
		fmt.Fprintf(env.Stdout, "queued: request id %s (stratus logs %s shows its run)\n", id, pos[0])
		return nil
	}
	if *showLog && out.LogResult != nil {
		if b, err := base64.StdEncoding.DecodeString(*out.LogResult); err == nil {
			env.Stderr.Write(b)
		}
	}
	env.Stdout.Write(out.Payload)
	if len(out.Payload) > 0 && out.Payload[len(out.Payload)-1] != '\n' {
		fmt.Fprintln(env.Stdout)
	}
	if out.FunctionError != nil {
		return fmt.Errorf("function error (%s)", *out.FunctionError)
	}
	return nil
}

func runList(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "ls", usageOf("ls"))
	var cf clientFlags
	cf.bind(fs)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("usage: %s", usageOf("ls"))
	}
	// Requests and cold starts come from the usage report (all time).
	usage := map[string]usageRow{}
	if resp, err := cf.get(ctx, cf.endpoint+"/stratus/v1/usage"); err == nil {
		var rep struct {
			Functions []usageRow `json:"functions"`
		}
		if json.NewDecoder(resp.Body).Decode(&rep) == nil {
			for _, f := range rep.Functions {
				usage[f.Function] = f
			}
		}
		resp.Body.Close()
	}
	// What runs of each function now: its instances and their network.
	type status struct {
		Function string   `json:"function"`
		Network  string   `json:"network"`
		Warm     int      `json:"warm"`
		Busy     int      `json:"busy"`
		URLs     []string `json:"urls"`
	}
	running := map[string]status{}
	if resp, err := cf.get(ctx, cf.endpoint+"/stratus/v1/functions"); err == nil {
		var rep struct {
			Functions []status `json:"functions"`
		}
		if json.NewDecoder(resp.Body).Decode(&rep) == nil {
			for _, f := range rep.Functions {
				running[f.Function] = f
			}
		}
		resp.Body.Close()
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tRUNTIME\tHANDLER\tMEMORY\tTIMEOUT\tCODE\tWARM\tBUSY\tNETWORK\tREQUESTS\tCOLD STARTS\tAVG INIT\tMODIFIED\tURL")
	client, err := cf.lambda(ctx)
	if err != nil {
		return err
	}
	p := lambda.NewListFunctionsPaginator(client, &lambda.ListFunctionsInput{})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return err
		}
		for _, f := range page.Functions {
			u := usage[aws.ToString(f.FunctionName)]
			avgInit := "-"
			if u.ColdStarts > 0 {
				avgInit = fmt.Sprintf("%.1f ms", u.InitMsTotal/float64(u.ColdStarts))
			}
			st, ok := running[aws.ToString(f.FunctionName)]
			warm, busy, network, url := "-", "-", "-", "-"
			if ok {
				warm, busy, network = fmt.Sprint(st.Warm), fmt.Sprint(st.Busy), st.Network
				if len(st.URLs) > 0 {
					url = strings.Join(st.URLs, " ")
				}
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d MB\t%d s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\n", aws.ToString(f.FunctionName), f.Runtime, aws.ToString(f.Handler),
				aws.ToInt32(f.MemorySize), aws.ToInt32(f.Timeout), humanBytes(int(f.CodeSize)), warm, busy, network, u.Requests, u.ColdStarts, avgInit, aws.ToString(f.LastModified), url)
		}
	}
	return tw.Flush()
}

func runRemove(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "rm", usageOf("rm"))
	var cf clientFlags
	cf.bind(fs)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return usagef("usage: %s", usageOf("rm"))
	}
	client, err := cf.lambda(ctx)
	if err != nil {
		return err
	}
	for _, name := range pos {
		if _, err := client.DeleteFunction(ctx, &lambda.DeleteFunctionInput{FunctionName: aws.String(name)}); err != nil {
			return err
		}
		fmt.Fprintf(env.Stderr, "deleted %s\n", name)
	}
	return nil
}

func runLogs(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "logs", usageOf("logs"))
	var cf clientFlags
	cf.bind(fs)
	follow := fs.Bool("f", false, "follow: keep printing new lines")
	since := fs.String("since", "1h", "start this long ago (such as 10m) or at an RFC 3339 time")
	request := fs.String("request-id", "", "only the lines of this invocation")
	level := fs.String("level", "", "only lines at this level or above: TRACE, DEBUG, INFO, WARN, ERROR, FATAL (lines without a level count as INFO)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("usage: %s", usageOf("logs"))
	}
	q := url.Values{"since": {*since}}
	if *follow {
		q.Set("follow", "true")
	}
	if *request != "" {
		q.Set("request", *request)
	}
	if *level != "" {
		q.Set("level", *level)
	}
	resp, err := cf.get(ctx, cf.endpoint+"/stratus/v1/functions/"+url.PathEscape(pos[0])+"/logs?"+q.Encode())
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, err = io.Copy(env.Stdout, resp.Body)
	if ctx.Err() != nil {
		return nil // interrupted while following
	}
	return err
}

func runUsage(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "usage", usageOf("usage"))
	var cf clientFlags
	cf.bind(fs)
	since := fs.String("since", "", "only usage from this long ago (such as 720h) or from an RFC 3339 time; default all")
	fn := fs.String("function", "", "only this function")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("usage: %s", usageOf("usage"))
	}
	q := url.Values{}
	if *since != "" {
		q.Set("since", *since)
	}
	if *fn != "" {
		q.Set("function", *fn)
	}
	resp, err := cf.get(ctx, cf.endpoint+"/stratus/v1/usage?"+q.Encode())
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if *asJSON {
		_, err = io.Copy(env.Stdout, resp.Body)
		return err
	}
	var rep struct {
		Prices struct {
			PerMillionRequests     float64 `json:"perMillionRequests"`
			PerGBSecond            float64 `json:"perGBSecond"`
			PerProvisionedGBSecond float64 `json:"perProvisionedGBSecond"`
		} `json:"prices"`
		Functions []usageRow `json:"functions"`
		Total     usageRow   `json:"total"`
		S3Prices  struct {
			PerGBMonth       float64 `json:"perGBMonth"`
			PerThousandTier1 float64 `json:"perThousandTier1"`
			PerThousandTier2 float64 `json:"perThousandTier2"`
		} `json:"s3Prices"`
		Buckets []struct {
			Bucket   string  `json:"bucket"`
			Tier1    int64   `json:"tier1Requests"`
			Tier2    int64   `json:"tier2Requests"`
			GBMonths float64 `json:"gbMonths"`
			Cost     float64 `json:"cost"`
		} `json:"buckets"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil {
		return fmt.Errorf("read usage: %w", err)
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "FUNCTION\tREQUESTS\tERRORS\tTHROTTLES\tCOLD STARTS\tBILLED MS\tGB-SECONDS\tPROVISIONED GB-S\tCOST (USD)\t")
	for _, r := range append(rep.Functions, rep.Total) {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%.6f\t%.6f\t%.8f\t\n", r.Function, r.Requests, r.Errors, r.Throttles, r.ColdStarts, r.BilledMs, r.GBSeconds, r.ProvisionedGBSeconds, r.Cost)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "\nprices: $%.2f per 1M requests, $%.10f per GB-second, $%.10f per provisioned GB-second\n", rep.Prices.PerMillionRequests, rep.Prices.PerGBSecond, rep.Prices.PerProvisionedGBSecond)
	if len(rep.Buckets) == 0 {
		return nil
	}
	fmt.Fprintln(env.Stdout)
	tw = tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "BUCKET\tPUT/COPY/POST/LIST\tGET/HEAD\tGB-MONTHS\tCOST (USD)\t")
	for _, b := range rep.Buckets {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.9f\t%.8f\t\n", b.Bucket, b.Tier1, b.Tier2, b.GBMonths, b.Cost)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "\nS3 prices: $%.3f per GB-month, $%.4f per 1,000 PUT/COPY/POST/LIST, $%.4f per 1,000 GET and others\n", rep.S3Prices.PerGBMonth, rep.S3Prices.PerThousandTier1, rep.S3Prices.PerThousandTier2)
	return nil
}

type usageRow struct {
	Function             string  `json:"function"`
	Requests             int64   `json:"requests"`
	Errors               int64   `json:"errors"`
	Throttles            int64   `json:"throttles"`
	ColdStarts           int64   `json:"coldStarts"`
	BilledMs             int64   `json:"billedMs"`
	GBSeconds            float64 `json:"gbSeconds"`
	InitMsTotal          float64 `json:"initMsTotal"`
	ProvisionedGBSeconds float64 `json:"provisionedGBSeconds"`
	Cost                 float64 `json:"cost"`
}

// get fetches a path of the Stratus API, signed for service "stratus".
func (c *clientFlags) get(ctx context.Context, u string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	provider, err := c.credentials(ctx)
	if err != nil {
		return nil, err
	}
	creds, err := provider.Retrieve(ctx)
	if err != nil {
		return nil, err
	}
	const emptyHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	if err := v4.NewSigner().SignHTTP(ctx, creds, req, emptyHash, "stratus", c.region, time.Now()); err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		var e struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&e)
		if e.Message == "" {
			e.Message = resp.Status
		}
		return nil, fmt.Errorf("%s: %s", e.Code, e.Message)
	}
	return resp, nil
}

// reportFlags parses the flags of a report command: the client's, and
// --json; it takes no arguments.
func reportFlags(env *Env, cmd string, args []string) (*clientFlags, bool, error) {
	fs := newFlags(env, cmd, usageOf(cmd))
	cf := &clientFlags{}
	cf.bind(fs)
	asJSON := fs.Bool("json", false, "print the report as JSON")
	pos, err := parse(fs, args)
	if err != nil {
		return nil, false, err
	}
	if len(pos) > 0 {
		return nil, false, usagef("usage: %s", usageOf(cmd))
	}
	return cf, *asJSON, nil
}

func runQueues(ctx context.Context, env *Env, args []string) error {
	cf, asJSON, err := reportFlags(env, "queues", args)
	if err != nil {
		return err
	}
	resp, err := cf.get(ctx, cf.endpoint+"/stratus/v1/queues")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var rep struct {
		Queues []struct {
			Name      string             `json:"name"`
			Visible   int64              `json:"visible"`
			InFlight  int64              `json:"inFlight"`
			Delayed   int64              `json:"delayed"`
			OldestAge float64            `json:"oldestAgeSeconds"`
			Counts    map[string]float64 `json:"counts"`
		} `json:"queues"`
		Async struct {
			Pending   uint64             `json:"pending"`
			OldestAge float64            `json:"oldestAgeSeconds"`
			Counts    map[string]float64 `json:"counts"`
		} `json:"async"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil {
		return fmt.Errorf("read queue report: %w", err)
	}
	if asJSON {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	age := func(s float64) string {
		if s <= 0 {
			return "-"
		}
		return time.Duration(s * float64(time.Second)).Round(time.Second).String()
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "QUEUE\tVISIBLE\tIN FLIGHT\tDELAYED\tOLDEST\tSENT\tRECEIVED\tRETRIES\tDELETED\tDEAD-LETTERED")
	for _, q := range rep.Queues {
		c := q.Counts
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\t%.0f\t%.0f\t%.0f\t%.0f\t%.0f\n", q.Name, q.Visible, q.InFlight, q.Delayed, age(q.OldestAge),
			c["sent"], c["received"], c["redelivered"], c["deleted"], c["deadLettered"])
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	a := rep.Async.Counts
	fmt.Fprintf(env.Stdout, "\nasync events: %d pending, oldest %s; accepted %.0f, succeeded %.0f, retried %.0f, throttled %.0f, retries exhausted %.0f, expired %.0f, dead-lettered %.0f\n",
		rep.Async.Pending, age(rep.Async.OldestAge), a["accepted"], a["succeeded"], a["retried"], a["throttled"], a["retries_exhausted"], a["expired"], a["dead_lettered"])
	fmt.Fprintln(env.Stdout, "(counters are this node's since it started; depths and ages are the store's)")
	return nil
}

func runBuckets(ctx context.Context, env *Env, args []string) error {
	cf, asJSON, err := reportFlags(env, "buckets", args)
	if err != nil {
		return err
	}
	resp, err := cf.get(ctx, cf.endpoint+"/stratus/v1/buckets")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var rep struct {
		Buckets []struct {
			Name          string `json:"name"`
			Created       string `json:"created"`
			Objects       int    `json:"objects"`
			Bytes         int64  `json:"bytes"`
			Uploads       int    `json:"uploads"`
			Notifications int    `json:"notifications"`
		} `json:"buckets"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil {
		return fmt.Errorf("read bucket report: %w", err)
	}
	if asJSON {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "BUCKET\tOBJECTS\tSIZE\tUPLOADS\tNOTIFICATIONS\tCREATED")
	for _, b := range rep.Buckets {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%d\t%s\n", b.Name, b.Objects, humanBytes(int(b.Bytes)), b.Uploads, b.Notifications, b.Created)
	}
	return tw.Flush()
}

// runDashboard prints the dashboard's address with the caller's key in
// its fragment: the page reads it there (no request carries a fragment)
// and signs its requests with it.
func runDashboard(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "dashboard", usageOf("dashboard"))
	var cf clientFlags
	cf.bind(fs)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("usage: %s", usageOf("dashboard"))
	}
	provider, err := cf.credentials(ctx)
	if err != nil {
		return err
	}
	creds, err := provider.Retrieve(ctx)
	if err != nil {
		return err
	}
	if creds.SessionToken != "" {
		return errors.New("the dashboard signs with a long-term access key; this profile holds a session")
	}
	frag := url.Values{"key": {creds.AccessKeyID}, "secret": {creds.SecretAccessKey}, "region": {cf.region}}
	fmt.Fprintf(env.Stdout, "%s/#%s\n", strings.TrimSuffix(cf.endpoint, "/"), frag.Encode())
	fmt.Fprintln(env.Stderr, "open it in a browser on this machine; the link holds your secret key: do not share it")
	return nil
}

func runNodes(ctx context.Context, env *Env, args []string) error {
	cf, asJSON, err := reportFlags(env, "nodes", args)
	if err != nil {
		return err
	}
	resp, err := cf.get(ctx, cf.endpoint+"/stratus/v1/node")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if asJSON {
		_, err = io.Copy(env.Stdout, resp.Body)
		return err
	}
	var rep struct {
		Store string `json:"store"`
		Nodes []struct {
			Name           string    `json:"name"`
			API            string    `json:"api"`
			Started        time.Time `json:"started"`
			Instances      int64     `json:"instances"`
			InFlight       int64     `json:"inFlight"`
			MaxConcurrency int       `json:"maxConcurrency"`
			Self           bool      `json:"self"`
		} `json:"nodes"`
		Replication []struct {
			Name     string   `json:"name"`
			Replicas int      `json:"replicas"`
			Leader   string   `json:"leader"`
			Current  int      `json:"current"`
			Lagging  []string `json:"lagging"`
			Offline  []string `json:"offline"`
		} `json:"replication"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil {
		return fmt.Errorf("read node status: %w", err)
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tAPI\tUP\tINSTANCES\tIN FLIGHT\tMAX CONCURRENCY")
	for _, n := range rep.Nodes {
		name := n.Name
		if n.Self {
			name += " *"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\n", name, n.API, time.Since(n.Started).Round(time.Second), n.Instances, n.InFlight, n.MaxConcurrency)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(rep.Replication) == 0 {
		fmt.Fprintf(env.Stdout, "\nstore: %s, one server\n", rep.Store)
		return nil
	}
	fmt.Fprintln(env.Stdout)
	tw = tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STREAM\tREPLICAS\tCURRENT\tLEADER\tHEALTH")
	for _, s := range rep.Replication {
		health := "ok"
		switch {
		case s.Leader == "":
			health = "NO LEADER: writes refused"
		case len(s.Offline) > 0:
			health = "offline: " + strings.Join(s.Offline, ",")
		case len(s.Lagging) > 0:
			health = "catching up: " + strings.Join(s.Lagging, ",")
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\n", s.Name, s.Replicas, s.Current, s.Leader, health)
	}
	return tw.Flush()
}
