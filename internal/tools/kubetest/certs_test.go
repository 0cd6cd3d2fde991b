package kubetest

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"slices"
	"testing"
)

// The certificates are checked without a server, so make test catches a broken PKI without the control plane.
func TestCertificatesChainToTheTestCA(t *testing.T) {
	ca, err := newPKI(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	serving, err := ca.serving("apiserver", []string{"kubernetes.default.svc"}, []net.IP{net.ParseIP("127.0.0.1")})
	if err != nil {
		t.Fatal(err)
	}
	admin, err := ca.client("admin", "kubetest-admin", "system:masters")
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.caCert)

	servingCert := loadLeaf(t, serving)
	for _, host := range []string{"127.0.0.1", "kubernetes.default.svc"} {
		if _, err := servingCert.Verify(x509.VerifyOptions{Roots: roots, DNSName: host}); err != nil {
			t.Errorf("serving certificate for %s: %v", host, err)
		}
	}
	adminCert := loadLeaf(t, admin)
	if _, err := adminCert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("admin certificate: %v", err)
	}
	if adminCert.Subject.CommonName != "kubetest-admin" || !slices.Equal(adminCert.Subject.Organization, []string{"system:masters"}) {
		t.Errorf("admin certificate subject %v, want CN=kubetest-admin O=system:masters", adminCert.Subject)
	}

	publicFile, privateFile, err := ca.serviceAccountKeys()
	if err != nil {
		t.Fatal(err)
	}
	for _, file := range []string{publicFile, privateFile} {
		if info, err := os.Stat(file); err != nil || info.Size() == 0 {
			t.Errorf("service-account key %s: %v", file, err)
		}
	}
}

func TestResidentBytesOfThisProcess(t *testing.T) {
	rss, err := ResidentBytes(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if rss <= 0 {
		t.Errorf("resident bytes %d, want more than 0", rss)
	}
}

func loadLeaf(t *testing.T, pair keyPair) *x509.Certificate {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(pair.certFile, pair.keyFile)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return leaf
}
