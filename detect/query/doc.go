// Package query owns the fleet search language of the operator console:
// the text an analyst types into the query box or passes as ?q= to
// /api/v1/devices and /api/v1/alerts, parsed once and matched against
// many records. It knows no field: the console decides which fields exist
// (WithSchema, WithFields) and what a record holds (Record).
//
// # Examples
//
//	fw:2.9.*                               firmware 2.9.anything (wildcards: * any run, ? one character)
//	fw<2.9.4                               firmware older than 2.9.4, in version order (2.10.0 is newer)
//	last_seen<-1h                          last seen more than an hour ago
//	last_seen>2026-12-06T08:00:00Z         seen since 08:00 UTC (RFC 3339, or a date: 2026-12-06)
//	score>5                                a number
//	status:alarm AND NOT group:plant-a/*   alarming devices outside plant A's groups
//	owner:"plant ops" criticality>2       quotes keep spaces; juxtaposition means AND
//	ip:*                                   has at least one ip
//	(detector:self OR detector:peer) NOT connected:true
//
// # Grammar
//
//	query    = [ or ] .
//	or       = and { "OR" and } .
//	and      = unary { [ "AND" ] unary } .          (* juxtaposition means AND *)
//	unary    = "NOT" unary | "(" or ")" | term .
//	term     = field ( ":" value | compare value ) .
//	compare  = "<" | "<=" | ">" | ">=" .
//	field    = first { namechar } .                 (* first: ASCII letter, digit, '_'; namechar: also '.', '-' *)
//	value    = bare | quoted .
//	bare     = vchar { vchar } .                    (* any byte but white space, '(', ')' and '"' *)
//	quoted   = '"' { qchar } '"' .                  (* any byte but '"' *)
//
// AND, OR and NOT are keywords in any case (and, Or, NOT); a word followed
// by ':' or a comparison is a field name, so "not:x" searches a field
// called not. Precedence is NOT, then AND, then OR: "a:1 OR b:2 c:3" is
// "a:1 OR (b:2 AND c:3)". In a value, bare or quoted, '\' makes the next
// byte literal: "device:plc\*" is the device named plc*. Field names are
// compared in lower case; values without regard to case.
//
// # Meaning
//
// A term holds for a record when any of the field's values satisfies it
// (ip:10.1.* holds when one of the device's addresses is in 10.1); a
// record without the field satisfies no term, so NOT group:plant-a/*
// includes devices without a group.
//
//   - field:* holds when the field has a value.
//   - field:value with '*' (any run, also empty) or '?' (one character)
//     is a glob over the text of the value, whatever the field's kind. It
//     is matched by a hand-written matcher: no regular expression is ever
//     built from a query, so "ip:10.1.*" means what it says and "[" or
//     "(?i)" are plain characters.
//   - field:value without wildcards compares text, except for a field the
//     schema declares a number, version or time, where it is equality in
//     that kind (fw:2.9 holds for "2.9.0" and "v2.9").
//   - field<value, <=, >, >= compare in the field's kind: the schema's,
//     or, for a field the schema leaves to KindAuto, the kind the literal
//     has (see KindAuto). A record value not of the kind satisfies no
//     comparison (fw<2.9.4 does not hold for fw "unknown").
//
// Versions order the way vendors write them (CompareVersions): a leading
// "v" is ignored, "+build" metadata is ignored, fields split at '.' and
// '_' compare as numbers (2.10.0 > 2.9.4; 2.9 = 2.9.0), letters within a
// field compare naturally (SP2 < SP10), and a pre-release, after the
// first '-', sorts before its release and by the same rule among its
// kind (2.9.4-beta < 2.9.4-rc1 < 2.9.4-rc10 < 2.9.4).
//
// A relative time is a sign and one or more amounts with a unit s, m, h,
// d (24 h) or w (7 d): -1h, -1h30m, -7d, +10m. It is resolved against the
// query's now (WithNow, by default the time of Parse), so last_seen<-1h
// is "last_seen before now minus one hour". Record times are RFC 3339
// (as time.RFC3339 writes them, fractions allowed) or dates, or come from
// TimeRecord.
//
// # Errors
//
// A query that cannot be parsed gives an *Error with the byte position of
// the problem and a sentence for the analyst, as in
// "position 3: expected a value after 'fw<'", fit for an HTTP 400 body.
package query
