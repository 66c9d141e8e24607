package auth

// The AWS managed policies Lambda users attach, under their own ARNs and
// with their documents as AWS publishes them. ReadOnlyAccess is AWS's
// document narrowed to the services Stratus speaks (the published one
// lists hundreds of services; the lines for these are the same).
var managedDocs = []struct{ Path, Name, Doc string }{
	{"/service-role/", "AWSLambdaBasicExecutionRole", `{
  "Version": "2012-10-17",
  "Statement": [
    {"Effect": "Allow", "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"], "Resource": "*"}
  ]
}`},
	{"/service-role/", "AWSLambdaSQSQueueExecutionRole", `{
  "Version": "2012-10-17",
  "Statement": [
    {"Effect": "Allow", "Action": ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"], "Resource": "*"}
  ]
}`},
	{"/service-role/", "AWSLambdaRole", `{
  "Version": "2012-10-17",
  "Statement": [
    {"Effect": "Allow", "Action": ["lambda:InvokeFunction"], "Resource": ["*"]}
  ]
}`},
	{"/", "AmazonSQSFullAccess", `{
  "Version": "2012-10-17",
  "Statement": [
    {"Effect": "Allow", "Action": ["sqs:*"], "Resource": "*"}
  ]
}`},
	{"/", "AmazonS3FullAccess", `{
  "Version": "2012-10-17",
  "Statement": [
    {"Effect": "Allow", "Action": ["s3:*", "s3-object-lambda:*"], "Resource": "*"}
  ]
}`},
	{"/", "AmazonS3ReadOnlyAccess", `{
  "Version": "2012-10-17",
  "Statement": [
    {"Effect": "Allow", "Action": ["s3:Get*", "s3:List*", "s3:Describe*", "s3-object-lambda:Get*", "s3-object-lambda:List*"], "Resource": "*"}
  ]
}`},
	{"/", "AdministratorAccess", `{
  "Version": "2012-10-17",
  "Statement": [
    {"Effect": "Allow", "Action": "*", "Resource": "*"}
  ]
}`},
	{"/", "ReadOnlyAccess", `{
  "Version": "2012-10-17",
  "Statement": [
    {"Sid": "ReadOnlyActions", "Effect": "Allow", "Action": [
      "apigateway:GET",
      "iam:Generate*", "iam:Get*", "iam:List*", "iam:Simulate*",
      "lambda:Get*", "lambda:List*",
      "logs:Describe*", "logs:FilterLogEvents", "logs:Get*", "logs:ListTagsForResource", "logs:ListTagsLogGroup", "logs:StartQuery", "logs:StopQuery", "logs:TestMetricFilter",
      "s3:Describe*", "s3:Get*", "s3:List*",
      "scheduler:Get*", "scheduler:List*",
      "sqs:Get*", "sqs:List*",
      "sts:GetCallerIdentity"
    ], "Resource": "*"}
  ]
}`},
}

// ManagedPolicy is an AWS managed policy.
type ManagedPolicy struct {
	ARN, Path, Name, Document string
	Policy                    *Policy
}

var managed = func() map[string]*ManagedPolicy {
	m := map[string]*ManagedPolicy{}
	for _, d := range managedDocs {
		p, err := ParsePolicy(d.Doc, false)
		if err != nil {
			panic("managed policy " + d.Name + ": " + err.Error())
		}
		arn := "arn:aws:iam::aws:policy" + d.Path + d.Name
		m[arn] = &ManagedPolicy{ARN: arn, Path: d.Path, Name: d.Name, Document: d.Doc, Policy: p}
	}
	return m
}()

// AWSManaged returns the AWS managed policy of arn, or nil.
func AWSManaged(arn string) *ManagedPolicy { return managed[arn] }

// AWSManagedPolicies lists them.
func AWSManagedPolicies() []*ManagedPolicy {
	out := make([]*ManagedPolicy, 0, len(managedDocs))
	for _, d := range managedDocs {
		out = append(out, managed["arn:aws:iam::aws:policy"+d.Path+d.Name])
	}
	return out
}
