package main

import (
	"bytes"
	"context"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/vigil-ot/vigil/ingest/simulate/fleetgen"
	"github.com/vigil-ot/vigil/sinks/console"
)

// chromium returns the path of Debian's chromium, skipping the test when
// it is absent, unless VIGIL_REQUIRE_CHROMIUM is set (CI installs it:
// .ci/install-deps).
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	if os.Getenv("VIGIL_REQUIRE_CHROMIUM") != "" {
		t.Fatal("chromium is not installed and VIGIL_REQUIRE_CHROMIUM is set: run .ci/install-deps")
	}
	t.Skip("chromium is not installed (apt-get install chromium, or .ci/install-deps)")
	return ""
}

// browser starts a headless chromium with a laptop's window.
func browser(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)), chromedp.WindowSize(1440, 900), chromedp.NoSandbox,
		chromedp.Flag("disable-gpu", true), chromedp.Flag("hide-scrollbars", true))
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(alloc)
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(func() { cancelTimeout(); cancelCtx(); cancelAlloc() })
	return ctx
}

// page drives one tab, failing the test on the first error.
type page struct {
	t     *testing.T
	ctx   context.Context
	shots string // folder of the screenshots
}

// screenshots returns the folder of the screenshots: $VIGIL_CONSOLE_SCREENSHOTS
// (docs/console updates the README's) or a temporary one.
func screenshots(t *testing.T) string {
	dir := os.Getenv("VIGIL_CONSOLE_SCREENSHOTS")
	if dir == "" {
		return t.TempDir()
	}
	if !filepath.IsAbs(dir) {
		dir, _ = filepath.Abs(filepath.Join(repoRoot, dir))
	}
	return dir
}

func (p *page) do(steps ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	if err := chromedp.Do(p.ctx, steps...); err != nil {
		p.t.Fatalf("browser: %v", err)
	}
}

func (p *page) text(sel string) string {
	p.t.Helper()
	v, err := chromedp.Run(p.ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		p.t.Fatalf("browser: text of %s: %v", sel, err)
	}
	return v
}

// open loads the view of hash and waits until it has rendered.
func (p *page) open(base, hash string) {
	p.t.Helper()
	p.do(chromedp.Navigate(base+hash), viewReady(hash))
}

func viewReady(hash string) chromedp.Action[chromedp.Void] {
	return chromedp.WaitVisible(chromedp.CSS(`body[data-ready="` + hash + `"]`))
}

// screenshot saves the page as NAME.png in $VIGIL_CONSOLE_SCREENSHOTS
// (docs/console updates the README's), or in a temporary folder.
func (p *page) screenshot(name string, fullPage ...bool) {
	p.t.Helper()
	shot := chromedp.CaptureScreenshot()
	if len(fullPage) > 0 {
		shot = chromedp.FullScreenshot(100)
	}
	png, err := chromedp.Run(p.ctx, shot)
	if err != nil {
		p.t.Fatalf("browser: screenshot: %v", err)
	}
	if err := os.WriteFile(filepath.Join(p.shots, name+".png"), png, 0o644); err != nil {
		p.t.Fatal(err)
	}
}

// TestConsoleInBrowser drives the console of `vigil replay --serve` over
// the fleet sample in headless chromium as an analyst would: the fleet
// table, a search, a bad query, a device page with its charts and its
// recommendation, approving it, then the quarantine queue, the groups and
// the alerts.
func TestConsoleInBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("replays the fleet sample and starts chromium")
	}
	p := &page{t: t, ctx: browser(t), shots: screenshots(t)}
	r := startConsoleReplay(t)
	base := "http://" + r.addr + "/"

	p.open(base, "#/fleet")
	if count := p.text("#count"); count != "1–50 of 60 devices" {
		t.Errorf("fleet page count %q", count)
	}
	p.screenshot("fleet")

	p.do(chromedp.SetValue(chromedp.CSS("#q"), "status:recommended OR status:quarantined"), chromedp.Click(chromedp.CSS("form.search button")),
		chromedp.WaitVisible(chromedp.CSS(`body[data-ready^="#/fleet?q=status"]`)))
	if rows := p.text("#fleet tbody"); !strings.HasPrefix(rows, "plc-a-002\trecommended\tplant-a/s7-1500") {
		t.Errorf("search rows:\n%s", rows)
	}
	p.screenshot("search")

	p.do(chromedp.SetValue(chromedp.CSS("#q"), "fw<"), chromedp.Click(chromedp.CSS("form.search button")),
		chromedp.WaitVisible(chromedp.CSS("#query-error:not(:empty)")))
	if e := p.text("#query-error"); !strings.Contains(e, "^ position 3: expected a value after 'fw<'") {
		t.Errorf("a bad query shows %q", e)
	}

	p.open(base, "#/device/plc-a-002")
	charts, err := chromedp.Run(p.ctx, chromedp.Evaluate[int](`document.querySelectorAll("svg.plot").length`))
	if err != nil {
		t.Fatal(err)
	}
	if title := p.text("h1"); !strings.Contains(title, "plc-a-002") || charts != 5 {
		t.Errorf("device page %q with %d charts, want plc-a-002 and its 5 metrics", title, charts)
	}
	spans, err := chromedp.Run(p.ctx, chromedp.Evaluate[int](`document.querySelectorAll("svg.plot .alarmspan").length`))
	if err != nil || spans < 1 {
		t.Errorf("the bytes_out chart marks no alarm interval (%d, %v)", spans, err)
	}
	// a point a step (the default 5 minutes) keeps the step's value
	// furthest outside the band: the alarm's values are on the chart
	if step := p.text("#recent-step"); !strings.Contains(step, "a point per 5 min") {
		t.Errorf("the charts' step reads %q", step)
	}
	outside, err := chromedp.Run(p.ctx, chromedp.Evaluate[int](`document.querySelectorAll("svg.plot circle.out").length`))
	if err != nil || outside < 1 {
		t.Errorf("no chart marks a value outside its band (%d, %v)", outside, err)
	}
	p.screenshot("device", true)
	p.do(chromedp.Click(chromedp.CSS("#approve-plc-a-002")), chromedp.WaitVisible(chromedp.CSS(".callout .actions .muted:not(:empty)")))
	if sent := p.text(".callout .actions .muted"); !strings.Contains(sent, "Sent: quarantine") || !strings.Contains(sent, "approved by local") {
		t.Errorf("after approving: %q", sent)
	}
	p.do(chromedp.WaitVisible(chromedp.CSS("h1 .pill.quarantined")))

	p.open(base, "#/device/plc-b-010") // upgraded from 4.6.1 to 4.7.0 in its group's rollout
	if fw := p.text("#firmware"); !regexp.MustCompile(`^4\.7\.0 since 2026-11-03 02:02:55 UTC\n4\.6\.1 from 2026-11-02 00:00:\d\d UTC$`).MatchString(fw) {
		t.Errorf("the firmware history of a downgraded device:\n%s", fw)
	}

	p.open(base, "#/quarantine")
	if q := p.text("main"); !strings.Contains(q, "approved by local") || !strings.Contains(q, "approval_required") {
		t.Errorf("the quarantine page does not show the decision:\n%.1500s", q)
	}
	p.screenshot("quarantine")

	p.open(base, "#/groups")
	if g := p.text("#groups"); !strings.Contains(g, "plant-a/s7-1500") || !strings.Contains(g, "protecting") {
		t.Errorf("groups page:\n%s", g)
	}
	p.screenshot("groups")

	p.open(base, "#/alerts")
	if a := p.text("table.alerts"); !strings.Contains(a, "bytes_out") || !strings.Contains(a, "auth-brute-force") {
		t.Errorf("the alerts page lacks the exfiltration or the brute force:\n%.1500s", a)
	}
	p.screenshot("alerts")
}

// TestConsoleInBrowserWithTokens: with tokens the page asks for one, and
// a viewer sees the device's recommendation without being able to decide.
func TestConsoleInBrowserWithTokens(t *testing.T) {
	if testing.Short() {
		t.Skip("replays the fleet sample and starts chromium")
	}
	const viewer = "viewer-secret-0123456789"
	t.Setenv(console.EnvTokens, "vic:viewer:"+viewer+",olga:operator:operator-secret-0123456789")
	p := &page{t: t, ctx: browser(t), shots: t.TempDir()}
	r := startConsoleReplay(t)
	base := "http://" + r.addr + "/"
	p.do(chromedp.Navigate(base+"#/device/plc-a-002"), chromedp.WaitVisible(chromedp.CSS("#token")))
	p.do(chromedp.SetValue(chromedp.CSS("#token"), viewer), chromedp.Click(chromedp.CSS("#login-form button")), viewReady("#/device/plc-a-002"))
	if who := p.text("#who"); who != "vic (viewer)" {
		t.Errorf("signed in as %q", who)
	}
	disabled, err := chromedp.Run(p.ctx, chromedp.Evaluate[bool](`document.getElementById("approve-plc-a-002").disabled`))
	if err != nil || !disabled {
		t.Errorf("a viewer's approve button is enabled (%v)", err)
	}
}

// TestRolloutInBrowser replays the simulator's bad rollout with
// testdata/config/rollout.yaml under `vigil replay --serve`: the Rollouts
// tab lists the rollout with abort recommended and its progress, and its
// page plots each KPI's cohorts, auth_failures with significant
// regressions marked.
func TestRolloutInBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("replays the simulated rollout and starts chromium")
	}
	p := &page{t: t, ctx: browser(t), shots: screenshots(t)}
	c := fleetgen.DefaultRolloutConfig(fleetgen.RolloutBad)
	var buf bytes.Buffer
	if _, err := fleetgen.GenerateRollout(c, &buf); err != nil {
		t.Fatal(err)
	}
	input := filepath.Join(t.TempDir(), "rollout.jsonl")
	if err := os.WriteFile(input, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Chdir(repoRoot)
	r := serveReplay(t, "testdata/config/rollout.yaml", input, 2)
	base := "http://" + r.addr + "/"

	p.open(base, "#/rollouts")
	rows := p.text("#rollouts tbody")
	if !strings.Contains(rows, c.From()+" → "+c.To()) || !strings.Contains(rows, "abort recommended") || !strings.Contains(rows, "rollout "+c.From()+" -> "+c.To()) {
		t.Fatalf("rollouts table:\n%s", rows)
	}
	p.do(chromedp.Click(chromedp.CSS("#rollouts tbody tr:first-child td a")), chromedp.WaitVisible(chromedp.CSS(`body[data-ready^="#/rollout/"]`)))
	charts, err := chromedp.Run(p.ctx, chromedp.Evaluate[int](`document.querySelectorAll(".rollout-chart svg.plot polyline.up").length`))
	if err != nil || charts != 2 {
		t.Fatalf("%d KPI plots with the upgraded cohort (%v), want auth_failures and msgs_sent", charts, err)
	}
	marked, err := chromedp.Run(p.ctx, chromedp.Evaluate[int](`document.querySelectorAll(".rollout-chart svg.plot circle.out").length`))
	if err != nil || marked < 1 {
		t.Errorf("no significant regression marked (%d, %v)", marked, err)
	}
	if title := p.text("h1"); !strings.Contains(title, "abort recommended") {
		t.Errorf("rollout page title %q", title)
	}
	p.screenshot("rollouts", true)
}

// TestConsoleShowsProfileInBrowser: over the judgement data set (weeks of
// pumps with a day/night rhythm), a device page shows under each metric
// its group's hour-of-week profile, every hour learned, the day above the
// level and the night below.
func TestConsoleShowsProfileInBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("replays the judgement data set and starts chromium")
	}
	p := &page{t: t, ctx: browser(t), shots: screenshots(t)}
	t.Chdir(repoRoot)
	r := serveReplay(t, "testdata/judgement/vigil.yaml", "testdata/judgement/telemetry.jsonl.gz", 2)
	p.open("http://"+r.addr+"/", "#/device/pump-000")
	strips, err := chromedp.Run(p.ctx, chromedp.Evaluate[int](`document.querySelectorAll(".chart .profile-strip svg.profile").length`))
	if err != nil || strips != 6 {
		t.Fatalf("%d profile strips (%v), want one under each of the 6 metrics", strips, err)
	}
	if sub := p.text(".chart .profile-strip .sub"); !strings.Contains(sub, "hour-of-week profile (Mon–Sun)") || !strings.Contains(sub, "168 of 168 hours learned") {
		t.Errorf("the first metric's profile says %q", sub)
	}
	// flow_lpm: Monday 02:00 below the level, 12:00 above
	bars, err := chromedp.Run(p.ctx, chromedp.Evaluate[[]string](
		`Array.from([...document.querySelectorAll(".chart")].find((c) => c.querySelector("h3").textContent === "flow_lpm").querySelectorAll("svg.profile rect"), (r) => r.getAttribute("class"))`))
	if err != nil || len(bars) != 168 || bars[2] != "below" || bars[12] != "above" {
		t.Errorf("flow_lpm's profile bars: %d (%v), Monday 02:00 %q, 12:00 %q", len(bars), err, at(bars, 2), at(bars, 12))
	}
	p.open("http://"+r.addr+"/", "#/group/"+url.PathEscape("plant-w/pump-ctl"))
	if got := p.text("#profiles"); !strings.Contains(got, "flow_lpm") || strings.Count(got, "hour-of-week profile") != 6 {
		t.Errorf("the group page's recurring patterns:\n%s", got)
	}
	p.screenshot("group-profiles", true)
}

// at returns xs[i], "" beyond its end.
func at(xs []string, i int) string {
	if i < len(xs) {
		return xs[i]
	}
	return ""
}
