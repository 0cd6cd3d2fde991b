//go:build kubetest

// Behind a build tag: these tests need the built control plane (make test-kube), which make test does not build.
package kubetest_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/symroute/symroute/internal/tools/kubetest"
)

// TestKubeAPIServerStarts checks the harness end to end with plain HTTPS, no client library: the admin certificate
// is accepted, objects are stored in etcd and read back, and the kubeconfig names the server.
func TestKubeAPIServerStarts(t *testing.T) {
	server := kubetest.Start(t)
	client, err := server.AdminClient()
	if err != nil {
		t.Fatal(err)
	}

	var version struct{ GitVersion string }
	call(t, client, http.MethodGet, server.URL+"/version", nil, http.StatusOK, &version)
	// The builder links the real version in; an unlinked build says v0.0.0-master.
	if !strings.HasPrefix(version.GitVersion, "v1.") {
		t.Errorf("kube-apiserver reports version %q, want the release it was built from", version.GitVersion)
	}

	const namespace = "kubetest-smoke"
	call(t, client, http.MethodPost, server.URL+"/api/v1/namespaces", map[string]any{
		"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": namespace},
	}, http.StatusCreated, nil)
	want := map[string]string{"table": "101", "interface": "eth-b"}
	call(t, client, http.MethodPost, server.URL+"/api/v1/namespaces/"+namespace+"/configmaps", map[string]any{
		"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": "routes"}, "data": want,
	}, http.StatusCreated, nil)

	var got struct {
		Metadata struct{ Name, Namespace, UID string }
		Data     map[string]string
	}
	call(t, client, http.MethodGet, server.URL+"/api/v1/namespaces/"+namespace+"/configmaps/routes", nil, http.StatusOK, &got)
	if got.Metadata.Name != "routes" || got.Metadata.Namespace != namespace || got.Metadata.UID == "" {
		t.Errorf("read back metadata %+v, want routes in %s with a UID", got.Metadata, namespace)
	}
	if fmt.Sprint(got.Data) != fmt.Sprint(want) {
		t.Errorf("read back data %v, want %v", got.Data, want)
	}

	// Without a certificate the server must not answer as admin: the CA is what authenticates.
	anonymous := &http.Client{Transport: &http.Transport{TLSClientConfig: client.Transport.(*http.Transport).TLSClientConfig.Clone()}}
	anonymous.Transport.(*http.Transport).TLSClientConfig.Certificates = nil
	call(t, anonymous, http.MethodGet, server.URL+"/api/v1/namespaces/"+namespace+"/configmaps/routes", nil, http.StatusForbidden, nil)

	kubeconfig, err := os.ReadFile(server.KubeconfigFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(kubeconfig, []byte("server: "+server.URL+"\n")) {
		t.Errorf("kubeconfig does not name %s:\n%s", server.URL, kubeconfig)
	}

	apiServerRSS, err := kubetest.ResidentBytes(server.APIServerPID())
	if err != nil {
		t.Fatal(err)
	}
	etcdRSS, err := kubetest.ResidentBytes(server.EtcdPID())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("control plane ready in %s (kube-apiserver %s after its start, version %s); RSS kube-apiserver %d MiB, etcd %d MiB",
		server.ReadyAfter.Round(10*time.Millisecond), server.APIServerReadyAfter.Round(10*time.Millisecond), version.GitVersion, apiServerRSS>>20, etcdRSS>>20)
}

// call sends body as JSON (send), checks the status and decodes the answer into out when out is not nil.
func call(t *testing.T, client *http.Client, method, url string, body any, wantStatus int, out any) {
	t.Helper()
	status, answer := send(t, client, method, url, body)
	if status != wantStatus {
		t.Fatalf("%s %s: %d, want %d: %s", method, url, status, wantStatus, answer)
	}
	if out != nil {
		if err := json.Unmarshal([]byte(answer), out); err != nil {
			t.Fatalf("%s %s: decoding %s: %v", method, url, answer, err)
		}
	}
}
