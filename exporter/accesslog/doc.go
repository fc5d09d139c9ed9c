// Package accesslog turns nginx access-log lines into Records.
//
// A log_format string is compiled once (Compile, or a preset: combined,
// main, main_timed, json) into a slice of literal/variable operations with
// each variable's meaning resolved up front; parsing a line is then a walk
// over that slice with no regexp, no map lookup and no allocation. Every
// variable nginx can log is accepted, in $name and ${name} form; the ones
// the metrics need ($status, $request, $request_time, $upstream_*, ...) are
// interpreted into Record fields, all are kept raw and addressable by slot
// (Format.Index, Record.Var).
//
// A Decoder reads Kafka record values: a Filebeat event (a JSON object with
// a string "message"; 6.x to 8.x field names) or a raw line, and chooses the
// format per record by rules on envelope fields, caching each rule outcome
// per distinct field value.
//
// The nginx behaviour this relies on:
//
//   - escape=default writes '"', '\' and every byte outside printable ASCII
//     as \xHH, so inside a quoted field the first '"' is the closing quote
//     and a line is always valid ASCII. escape=json writes JSON string
//     escapes. escape=none writes values as they are: a quoted value may then
//     contain the quote, and the parser falls back to the whole following
//     literal (and, for the last variable, the end of the line) to find its
//     end.
//   - A variable with no value is logged as "-"; numbers then read as -1.
//   - $request is the request line as received. nginx logs it even when it is
//     not HTTP (a TLS ClientHello sent to a plain port is logged as
//     "\x16\x03\x01..."), when it is empty, or "-"; such lines parse, with an
//     empty Method, because the request did happen and is counted.
//   - $upstream_* variables hold one value per server tried, joined by ", "
//     within an upstream group and " : " across groups (X-Accel-Redirect,
//     error_page); a try that got no response logs "-". Durations are summed
//     exactly (in integer nanoseconds), status and address are the last
//     value, and UpstreamTries counts the values.
//   - $time_local always uses English month names and a numeric zone;
//     $time_iso8601 always has a ±hh:mm zone; $msec is Unix seconds with
//     millisecond resolution.
//   - With escape=json and a JSON object as the log_format, each line is a
//     JSON object whose values are the variables; keys may come in any order,
//     values may be strings or (for unquoted variables) numbers, and keys
//     from a different template are still understood through a default
//     mapping of common key names (time, remote_addr, status, ...).
//
// Byte slices in a Record alias the input or buffers the Record owns; they
// are valid until the Record is filled again. Formats are immutable and may
// be shared; a Decoder and a Record belong to one goroutine at a time.
package accesslog
