package detect

import "strings"

// ATT&CK techniques Vigil tags alerts with. Tags are deliberately sparse:
// a technique is attached only where the observed behavior is the
// technique's own observable, not where it is one of many possible causes
// (a traffic spike is not tagged "exfiltration"). Operators add tags per
// metric (detect.metrics.<name>.technique) and per rule (rules[].technique).
//
//	detector  behavior                 technique  name (matrix)
//	identity  firmware_downgrade       T0857      System Firmware (ICS)
//	identity  shared_certificate       T0859      Valid Accounts (ICS): one credential on several devices
//	identity  multiple_client_id       T0859      Valid Accounts (ICS): the device's identity used by several clients
//	identity  multiple_src_ip          T0856      Spoof Reporting Message (ICS): reports under the device's id from another host
//	silence   silence                  T0815      Denial of View (ICS): the device's view is lost while its peers report
//	fleet     reporting_fraction       T0815      Denial of View (ICS): part of a group stopped reporting
//	self/peer/rule  auth failure metrics  T1110   Brute Force (Enterprise): metric names containing auth_fail,
//	                                             authorization_fail, failed_login or login_fail
//
// Silence is not tagged T0881 Service Stop or T0816 Device Restart/Shutdown:
// those are causes Vigil cannot see; the loss of view is what it observes.
const (
	TechniqueSystemFirmware   = "T0857"
	TechniqueValidAccounts    = "T0859"
	TechniqueSpoofReporting   = "T0856"
	TechniqueDenialOfView     = "T0815"
	TechniqueBruteForce       = "T1110"
	behaviorFirmwareDowngrade = "firmware_downgrade"
	behaviorSharedCert        = "shared_certificate"
	behaviorMultiClientID     = "multiple_client_id"
	behaviorMultiSrcIP        = "multiple_src_ip"
	behaviorSilence           = "silence"
	behaviorMessageRate       = "message_rate"
	behaviorReportingFraction = "reporting_fraction"
	behaviorAlarmStorm        = "alarm_storm"
	behaviorQuarantineRail    = "quarantine_rail"
)

// metricTechnique returns the technique for alerts on metric name, from the
// table above, or "".
func metricTechnique(name string) string {
	n := strings.ToLower(name)
	for _, s := range [...]string{"auth_fail", "authorization_fail", "authorization-fail", "failed_login", "login_fail"} {
		if strings.Contains(n, s) {
			return TechniqueBruteForce
		}
	}
	return ""
}
