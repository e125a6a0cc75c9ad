package secrets

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/petrel-net/petrel/internal/testenv/kubeapi"
)

// On a real kube-apiserver: passwords are read from the watched namespace
// only, a rotation is seen, and errors name Secret and key, never values.
func TestPasswordsFollowTheirSecrets(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a kube-apiserver")
	}
	env := kubeapi.Start(t)
	client, err := kubernetes.NewForConfig(env.RestConfig)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, ns := range []string{"petrel", "elsewhere"} {
		if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "bgp", Namespace: ns}, Data: map[string][]byte{"tor": []byte("s3cret-" + ns)}}
		if _, err := client.CoreV1().Secrets(ns).Create(ctx, secret, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	changes := make(chan struct{}, 100)
	w, err := Start(ctx, client, "petrel", func() { changes <- struct{}{} })
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WaitSynced(ctx, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if pw, err := w.Password("bgp", "tor"); err != nil || pw != "s3cret-petrel" {
		t.Fatalf("Password = %q, %v; want the petrel namespace's", pw, err)
	}
	for _, tc := range []struct{ name, key, want string }{
		{"nope", "tor", `Secret "nope" not found in namespace "petrel"`},
		{"bgp", "rack", `Secret "bgp" in namespace "petrel" has no key "rack"`},
	} {
		if _, err := w.Password(tc.name, tc.key); err == nil || err.Error() != tc.want || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("Password(%s, %s) error = %v, want %q", tc.name, tc.key, err, tc.want)
		}
	}
	for len(changes) > 0 {
		<-changes
	}
	s, _ := client.CoreV1().Secrets("petrel").Get(ctx, "bgp", metav1.GetOptions{})
	s.Data["tor"] = []byte("rotated")
	if _, err := client.CoreV1().Secrets("petrel").Update(ctx, s, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-changes:
	case <-time.After(10 * time.Second):
		t.Fatal("no change seen after a rotation")
	}
	if pw, _ := w.Password("bgp", "tor"); pw != "rotated" {
		t.Errorf("after rotation Password = %q", pw)
	}
}
