package agent

import (
	"os"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// TestAdmissionHoldsEveryNodeStatusField: the admission policy holds each field of a Node's status but the
// conditions as it was when an agent writes its condition. CEL cannot walk a typed object's fields, so the policy
// lists them; a field a Kubernetes version adds to NodeStatus (declaredFeatures came this way) fails here until
// the policy holds it too.
func TestAdmissionHoldsEveryNodeStatusField(t *testing.T) {
	data, err := os.ReadFile("../../../packaging/kubernetes/admission.yaml")
	if err != nil {
		t.Fatal(err)
	}
	policy := string(data)
	typ := reflect.TypeOf(corev1.NodeStatus{})
	for i := range typ.NumField() {
		name, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
		if name == "conditions" || name == "" {
			continue
		}
		held := "object.status.?" + name + " == oldObject.status.?" + name
		if !strings.Contains(policy, held) {
			t.Errorf("admission.yaml does not hold status.%s: want %q", name, held)
		}
	}
}
