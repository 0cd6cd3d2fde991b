//go:build kubetest

package kubetest_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v4"

	"github.com/symroute/symroute/internal/tools/kubetest"
)

// TestShippedCRDsCheckTheShapeAtAdmission: the CustomResourceDefinitions under packaging/kubernetes are accepted
// by a real API server, and their schema and CEL rules refuse, with their messages, what they say they refuse:
// the shape is checked at admission with no webhook server.
func TestShippedCRDsCheckTheShapeAtAdmission(t *testing.T) {
	server := kubetest.Start(t)
	client, err := server.AdminClient()
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob("../../../packaging/kubernetes/crd-*.yaml")
	if err != nil || len(files) != 2 {
		t.Fatalf("CRDs %v: %v", files, err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var crd map[string]any
		if err := yaml.Unmarshal(data, &crd); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if code, answer := send(t, client, http.MethodPost, server.URL+"/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd); code != http.StatusCreated {
			t.Fatalf("%s refused: %d %s", f, code, answer)
		}
		established(t, client, server.URL, crd["metadata"].(map[string]any)["name"].(string))
	}

	policies := server.URL + "/apis/symroute.io/v1alpha1/routingpolicies"
	policy := func(name string, spec map[string]any) map[string]any {
		return map[string]any{"apiVersion": "symroute.io/v1alpha1", "kind": "RoutingPolicy", "metadata": map[string]any{"name": name}, "spec": spec}
	}
	description := "version: 1\ninterfaces:\n  - name: eth-b\n    dhcp4: true\n"
	for _, c := range []struct {
		name string
		spec map[string]any
		want string // "" when the server stores it
	}{
		{"plain", map[string]any{"description": description}, ""},
		{"percent", map[string]any{"description": description, "rollout": map[string]any{"maxUnavailable": "25%"}}, ""},
		{"count", map[string]any{"description": description, "rollout": map[string]any{"maxUnavailable": 2},
			"nodeSelector": map[string]any{"matchExpressions": []any{map[string]any{"key": "role", "operator": "In", "values": []any{"ingress"}}}}}, ""},
		{"zero", map[string]any{"description": description, "rollout": map[string]any{"maxUnavailable": 0}}, "maxUnavailable is a number of nodes"},
		{"too-many-percent", map[string]any{"description": description, "rollout": map[string]any{"maxUnavailable": "150%"}}, "maxUnavailable is a number of nodes"},
		{"in-without-values", map[string]any{"description": description,
			"nodeSelector": map[string]any{"matchExpressions": []any{map[string]any{"key": "role", "operator": "In"}}}}, "In and NotIn take values"},
		{"unknown-operator", map[string]any{"description": description,
			"nodeSelector": map[string]any{"matchExpressions": []any{map[string]any{"key": "role", "operator": "Gt", "values": []any{"1"}}}}}, "Unsupported value"},
		{"no-description", map[string]any{}, "spec.description: Required value"},
		{"checks", map[string]any{"description": description, "checks": map[string]any{"timeoutSeconds": 90, "skipGateways": []any{"eth-b"}}}, ""},
		{"checks-zero-timeout", map[string]any{"description": description, "checks": map[string]any{"timeoutSeconds": 0}}, "spec.checks.timeoutSeconds"},
		{"checks-twice", map[string]any{"description": description, "checks": map[string]any{"skipGateways": []any{"eth-b", "eth-b"}}}, "Duplicate value"},
		{"checks-long-name", map[string]any{"description": description, "checks": map[string]any{"skipGateways": []any{"an-interface-name"}}}, "spec.checks.skipGateways[0]"},
	} {
		code, answer := send(t, client, http.MethodPost, policies, policy(c.name, c.spec))
		switch {
		case c.want == "" && code != http.StatusCreated:
			t.Errorf("%s: refused, want stored: %d %s", c.name, code, answer)
		case c.want != "" && (code != http.StatusUnprocessableEntity || !strings.Contains(answer, c.want)):
			t.Errorf("%s: %d %s, want 422 saying %q", c.name, code, answer, c.want)
		}
	}

	// The agent's node state is a resource of its own, with a status the agent writes.
	code, answer := send(t, client, http.MethodPost, server.URL+"/apis/symroute.io/v1alpha1/routingnodestates",
		map[string]any{"apiVersion": "symroute.io/v1alpha1", "kind": "RoutingNodeState", "metadata": map[string]any{"name": "node-1"}})
	if code != http.StatusCreated {
		t.Errorf("node state refused: %d %s", code, answer)
	}
}

// send sends body as JSON (none when nil) and returns the status and the answer.
func send(t *testing.T, client *http.Client, method, url string, body any) (int, string) {
	t.Helper()
	var reader io.Reader
	if body != nil {
		encoded, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		reader = bytes.NewReader(encoded)
	}
	request, err := http.NewRequest(method, url, reader)
	if err != nil {
		t.Fatal(err)
	}
	request.Header.Set("Content-Type", "application/json")
	request.Header.Set("Accept", "application/json")
	response, err := client.Do(request)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer response.Body.Close()
	answer, err := io.ReadAll(response.Body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return response.StatusCode, string(answer)
}

// established waits until the API server serves the CRD named name.
func established(t *testing.T, client *http.Client, url, name string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var crd struct {
			Status struct {
				Conditions []struct{ Type, Status string }
			}
		}
		call(t, client, http.MethodGet, url+"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/"+name, nil, http.StatusOK, &crd)
		for _, c := range crd.Status.Conditions {
			if c.Type == "Established" && c.Status == "True" {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not established after 30s: %+v", name, crd.Status.Conditions)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
