package accesslog

// kind is what a variable means to the Record. It is resolved once per
// variable at compile time so that the per-line work is a switch-free
// sequence of slot reads.
type kind uint8

const (
	kOther kind = iota
	kRemoteAddr
	kTimeLocal
	kTimeISO
	kMsec
	kRequest
	kMethod     // $request_method
	kRequestURI // $request_uri: path and query
	kURI        // $uri, $document_uri: path only
	kArgs       // $args, $query_string
	kProtocol   // $server_protocol
	kStatus
	kBodyBytes
	kBytesSent
	kRequestTime
	kUpResponseTime
	kUpConnectTime
	kUpHeaderTime
	kUpStatus
	kUpAddr
	kHost
	kServerName
	kHTTPHost
	kRequestID
	kTraceID     // $otel_trace_id (nginx otel module), $opentelemetry_trace_id (older module)
	kTraceparent // $http_traceparent: a W3C traceparent header

	numKinds
)

var kindByName = map[string]kind{
	"remote_addr":            kRemoteAddr,
	"time_local":             kTimeLocal,
	"time_iso8601":           kTimeISO,
	"msec":                   kMsec,
	"request":                kRequest,
	"request_method":         kMethod,
	"request_uri":            kRequestURI,
	"uri":                    kURI,
	"document_uri":           kURI,
	"args":                   kArgs,
	"query_string":           kArgs,
	"server_protocol":        kProtocol,
	"status":                 kStatus,
	"body_bytes_sent":        kBodyBytes,
	"bytes_sent":             kBytesSent,
	"request_time":           kRequestTime,
	"upstream_response_time": kUpResponseTime,
	"upstream_connect_time":  kUpConnectTime,
	"upstream_header_time":   kUpHeaderTime,
	"upstream_status":        kUpStatus,
	"upstream_addr":          kUpAddr,
	"host":                   kHost,
	"server_name":            kServerName,
	"http_host":              kHTTPHost,
	"request_id":             kRequestID,
	"otel_trace_id":          kTraceID,
	"opentelemetry_trace_id": kTraceID,
	"http_traceparent":       kTraceparent,
}

func kindOf(name string) kind { return kindByName[name] }

func (k kind) numeric() bool {
	switch k {
	case kStatus, kBodyBytes, kBytesSent, kRequestTime, kMsec:
		return true
	}
	return false
}

// multi reports the variables nginx writes as "a, b : c" when a request
// tried several upstream servers or groups.
func (k kind) multi() bool {
	switch k {
	case kUpResponseTime, kUpConnectTime, kUpHeaderTime, kUpStatus, kUpAddr:
		return true
	}
	return false
}

// defaultJSONKeys maps the JSON keys commonly used in escape=json templates
// to the variable they carry, so that a JSON access line is understood
// without its template. Template keys take precedence.
var defaultJSONKeys = []struct{ key, variable string }{
	{"time", "time_iso8601"}, // parseAnyTime also takes the $time_local and $msec forms
	{"time_iso8601", "time_iso8601"},
	{"@timestamp", "time_iso8601"},
	{"timestamp", "time_iso8601"},
	{"time_local", "time_local"},
	{"msec", "msec"},
	{"remote_addr", "remote_addr"},
	{"client_ip", "remote_addr"},
	{"remote_user", "remote_user"},
	{"request", "request"},
	{"method", "request_method"},
	{"request_method", "request_method"},
	{"uri", "request_uri"},
	{"request_uri", "request_uri"},
	{"path", "request_uri"},
	{"args", "args"},
	{"query_string", "args"},
	{"protocol", "server_protocol"},
	{"server_protocol", "server_protocol"},
	{"status", "status"},
	{"body_bytes_sent", "body_bytes_sent"},
	{"bytes_sent", "bytes_sent"},
	{"request_time", "request_time"},
	{"upstream_response_time", "upstream_response_time"},
	{"upstream_connect_time", "upstream_connect_time"},
	{"upstream_header_time", "upstream_header_time"},
	{"upstream_status", "upstream_status"},
	{"upstream_addr", "upstream_addr"},
	{"host", "host"},
	{"vhost", "host"},
	{"server_name", "server_name"},
	{"http_host", "http_host"},
	{"http_user_agent", "http_user_agent"},
	{"user_agent", "http_user_agent"},
	{"http_referer", "http_referer"},
	{"referer", "http_referer"},
	{"http_x_forwarded_for", "http_x_forwarded_for"},
	{"request_id", "request_id"},
	{"trace_id", "otel_trace_id"},
	{"traceparent", "http_traceparent"},
}
