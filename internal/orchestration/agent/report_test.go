package agent

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"

	"github.com/symroute/symroute/internal/core/fleet"
)

func TestEventForEachTransition(t *testing.T) {
	applied := nodeStatus{Policy: "edge", AppliedGeneration: 2, Result: fleet.Verified, Message: "confirmed"}
	for _, c := range []struct {
		name                       string
		old, now                   nodeStatus
		kind, reason, action, note string
		none                       bool
	}{
		{name: "first apply", now: applied, kind: "Normal", reason: "Verified", action: "Apply", note: "policy edge generation 2: confirmed"},
		{name: "unchanged", old: applied, now: applied, none: true},
		{name: "drift", old: applied, now: nodeStatus{Policy: "edge", AppliedGeneration: 2, Result: fleet.Drifted, Message: "rule gone"},
			kind: "Warning", reason: "Drifted", action: "Verify", note: "policy edge generation 2: rule gone"},
		{name: "mended", old: nodeStatus{Policy: "edge", AppliedGeneration: 2, Result: fleet.Drifted}, now: applied,
			kind: "Normal", reason: "Verified", action: "Verify"},
		{name: "new generation after drift", old: nodeStatus{Policy: "edge", AppliedGeneration: 1, Result: fleet.Drifted}, now: applied,
			kind: "Normal", reason: "Verified", action: "Apply"},
		{name: "rolled back", old: applied, now: nodeStatus{Policy: "edge", AppliedGeneration: 3, Result: fleet.RolledBack},
			kind: "Warning", reason: "RolledBack", action: "Apply"},
		{name: "removed", old: applied, now: nodeStatus{Result: fleet.Removed, Message: "no RoutingPolicy selects this node"},
			kind: "Normal", reason: "Removed", action: "Remove", note: "no RoutingPolicy selects this node"},
	} {
		kind, reason, action, note, ok := eventFor(c.old, c.now)
		if c.none {
			if ok {
				t.Errorf("%s: an event %s/%s for no change", c.name, kind, reason)
			}
			continue
		}
		if !ok || kind != c.kind || reason != c.reason || action != c.action || c.note != "" && note != c.note {
			t.Errorf("%s: event %v %s/%s %s %q, want %s/%s %s %q", c.name, ok, kind, reason, action, note, c.kind, c.reason, c.action, c.note)
		}
	}
}

func TestConditionPatchWritesOnlyChanges(t *testing.T) {
	now := time.Date(2026, 11, 24, 3, 0, 0, 0, time.UTC)
	s := nodeStatus{Policy: "edge", AppliedGeneration: 2, Result: fleet.Drifted, Message: "rule gone\nand more", LastTransitionTime: now}
	node := &corev1.Node{}
	patch := conditionPatch(node, s, now)
	var got struct {
		Status struct{ Conditions []corev1.NodeCondition }
	}
	if err := json.Unmarshal(patch, &got); err != nil || len(got.Status.Conditions) != 1 {
		t.Fatalf("patch %s: %v", patch, err)
	}
	c := got.Status.Conditions[0]
	if c.Type != ConditionType || c.Status != corev1.ConditionFalse || c.Reason != "Drifted" || c.Message != "policy edge generation 2: rule gone and more" {
		t.Errorf("condition %+v", c)
	}
	node.Status.Conditions = []corev1.NodeCondition{{Type: "Ready", Status: corev1.ConditionTrue}, c}
	if p := conditionPatch(node, s, now.Add(time.Minute)); p != nil {
		t.Errorf("an unchanged condition is patched again: %s", p)
	}
	if p := string(conditionPatch(node, nodeStatus{Result: fleet.Removed}, now)); !strings.Contains(p, `"$patch":"delete"`) || !strings.Contains(p, string(ConditionType)) {
		t.Errorf("a removed node's condition is not deleted: %s", p)
	}
	if p := conditionPatch(&corev1.Node{}, nodeStatus{Result: fleet.Removed}, now); p != nil {
		t.Errorf("a patch for a condition that is not there: %s", p)
	}
}

func TestTruncateKeepsRunesWhole(t *testing.T) {
	s := strings.Repeat("é", 600) // 1200 bytes
	got := truncate(s, maxNote)
	if len(got) > maxNote || !utf8.ValidString(got) || !strings.HasSuffix(got, "...") {
		t.Errorf("truncate: %d bytes, valid %v", len(got), utf8.ValidString(got))
	}
	// An invalid byte early on does not empty the note: only the cut is moved back.
	broken := "\xff" + strings.Repeat("a", 2000)
	if got := truncate(broken, maxNote); len(got) != maxNote || got[0] != 0xff {
		t.Errorf("truncate of a note with an invalid byte: %d bytes", len(got))
	}
	if truncate("short", maxNote) != "short" {
		t.Error("a short note is changed")
	}
}

func TestVerifyDelayIsBoundedUnderChangesThatNeverSettle(t *testing.T) {
	t0 := time.Date(2026, 11, 24, 4, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		after time.Duration // from the first change not yet verified
		want  time.Duration
	}{
		{0, changeSettle},
		{5 * time.Second, changeSettle},
		{9 * time.Second, time.Second},
		{maxChangeDelay, 0},
		{time.Minute, 0},
	} {
		if got := verifyDelay(t0.Add(c.after), t0); got != c.want {
			t.Errorf("a change %v after the first: verify in %v, want %v", c.after, got, c.want)
		}
	}
}
