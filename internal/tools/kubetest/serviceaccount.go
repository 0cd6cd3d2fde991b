package kubetest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.yaml.in/yaml/v4"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	kjson "k8s.io/apimachinery/pkg/util/json"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// This file gives tests what a cluster's operator does before an agent runs: the shipped manifests created, and a
// service account's token, so the test acts as the DaemonSet's account and meets RBAC's real denials.

// establishedTimeout bounds a CRD's becoming servable; on loopback it takes well under a second.
const establishedTimeout = 30 * time.Second

// AdminConfig is a client configuration for the admin certificate.
func (s *Server) AdminConfig(t testing.TB) *rest.Config {
	t.Helper()
	config, err := clientcmd.BuildConfigFromFlags("", s.KubeconfigFile)
	if err != nil {
		t.Fatal(err)
	}
	return config
}

// TokenConfig is a client configuration that presents token alone.
func (s *Server) TokenConfig(token string) *rest.Config {
	return &rest.Config{Host: s.URL, BearerToken: token, TLSClientConfig: rest.TLSClientConfig{CAFile: s.CAFile}}
}

// Clients are the typed and the dynamic client for config, with client-go's rate limit lifted: a test's requests
// must not wait on the client.
func Clients(t testing.TB, config *rest.Config) (kubernetes.Interface, dynamic.Interface) {
	t.Helper()
	config = rest.CopyConfig(config)
	config.QPS, config.Burst = 1000, 1000
	kube, err := kubernetes.NewForConfig(config)
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(config)
	if err != nil {
		t.Fatal(err)
	}
	return kube, dyn
}

// CreateManifests creates every object of the multi-document YAML files as the admin, in order, and waits until
// each CustomResourceDefinition among them is established (its resource served).
func (s *Server) CreateManifests(t testing.TB, files ...string) {
	t.Helper()
	config := s.AdminConfig(t)
	disc, err := discovery.NewDiscoveryClientForConfig(config)
	if err != nil {
		t.Fatal(err)
	}
	groups, err := restmapper.GetAPIGroupResources(disc)
	if err != nil {
		t.Fatal(err)
	}
	mapper := restmapper.NewDiscoveryRESTMapper(groups)
	_, dyn := Clients(t, config)
	var crds []string
	for _, file := range files {
		objects, err := readManifests(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, obj := range objects {
			gvk := obj.GroupVersionKind()
			mapping, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
			if err != nil {
				t.Fatalf("%s: %s %s: %v", file, gvk.Kind, obj.GetName(), err)
			}
			var r dynamic.ResourceInterface = dyn.Resource(mapping.Resource)
			if ns := obj.GetNamespace(); ns != "" {
				r = dyn.Resource(mapping.Resource).Namespace(ns)
			}
			if _, err := r.Create(t.Context(), obj, metav1.CreateOptions{}); err != nil {
				t.Fatalf("%s: %s %s: %v", file, gvk.Kind, obj.GetName(), err)
			}
			if gvk.Kind == "CustomResourceDefinition" {
				crds = append(crds, obj.GetName())
			}
		}
	}
	crdResource := schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	for _, name := range crds {
		deadline := time.Now().Add(establishedTimeout)
		for !established(t, dyn.Resource(crdResource), name) {
			if time.Now().After(deadline) {
				t.Fatalf("CRD %s not established after %v", name, establishedTimeout)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

func established(t testing.TB, crds dynamic.NamespaceableResourceInterface, name string) bool {
	u, err := crds.Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		return false
	}
	conditions, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conditions {
		if m, ok := c.(map[string]any); ok && m["type"] == "Established" && m["status"] == "True" {
			return true
		}
	}
	return false
}

// readManifests reads a multi-document YAML file as unstructured objects, numbers as the API's JSON has them.
func readManifests(file string) ([]*unstructured.Unstructured, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var out []*unstructured.Unstructured
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var doc map[string]any
		if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
			return out, nil
		} else if err != nil {
			return nil, fmt.Errorf("%s: %v", file, err)
		}
		if doc == nil {
			continue // an empty document
		}
		encoded, err := json.Marshal(doc)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", file, err)
		}
		var obj map[string]any
		if err := kjson.Unmarshal(encoded, &obj); err != nil {
			return nil, fmt.Errorf("%s: %v", file, err)
		}
		out = append(out, &unstructured.Unstructured{Object: obj})
	}
}

// ServiceAccountToken asks the TokenRequest API for a token of the service account namespace/name, valid for an
// hour, as the kubelet asks for a pod's projected token.
func (s *Server) ServiceAccountToken(t testing.TB, namespace, name string) string {
	t.Helper()
	return s.token(t, namespace, name, nil)
}

// NodeToken is a token of service account namespace/name bound to the Node node, as the kubelet binds a pod's: the
// API server then names the node in the token's user (authentication.kubernetes.io/node-name), which
// packaging/kubernetes/admission.yaml holds an agent's writes to. The Node must exist.
func (s *Server) NodeToken(t testing.TB, namespace, name, node string) string {
	t.Helper()
	kube, _ := Clients(t, s.AdminConfig(t))
	n, err := kube.CoreV1().Nodes().Get(t.Context(), node, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return s.token(t, namespace, name, &authenticationv1.BoundObjectReference{Kind: "Node", APIVersion: "v1", Name: node, UID: n.UID})
}

func (s *Server) token(t testing.TB, namespace, name string, bound *authenticationv1.BoundObjectReference) string {
	t.Helper()
	kube, _ := Clients(t, s.AdminConfig(t))
	hour := int64(3600)
	request, err := kube.CoreV1().ServiceAccounts(namespace).CreateToken(t.Context(), name,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &hour, BoundObjectRef: bound}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("token of %s/%s: %v", namespace, name, err)
	}
	return request.Status.Token
}

// TokenKubeconfig writes a kubeconfig, in the server's dir under name, that reaches the API server at url (its
// own URL, or an address forwarded to it) and authenticates with token alone: no client certificate, so what the
// holder may do is what RBAC grants the token's account. It returns the file's path.
func (s *Server) TokenKubeconfig(t testing.TB, name, url, token string) string {
	t.Helper()
	ca, err := os.ReadFile(s.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	config := clientcmdapi.NewConfig()
	config.Clusters["kubetest"] = &clientcmdapi.Cluster{Server: url, CertificateAuthorityData: ca}
	config.AuthInfos["token"] = &clientcmdapi.AuthInfo{Token: token}
	config.Contexts["kubetest"] = &clientcmdapi.Context{Cluster: "kubetest", AuthInfo: "token"}
	config.CurrentContext = "kubetest"
	file := filepath.Join(s.Dir, name)
	if err := clientcmd.WriteToFile(*config, file); err != nil {
		t.Fatal(err)
	}
	return file
}
