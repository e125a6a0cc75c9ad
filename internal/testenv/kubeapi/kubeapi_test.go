package kubeapi_test

import (
	"context"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/petrel-net/petrel/internal/testenv/kubeapi"
)

func TestStart(t *testing.T) {
	if testing.Short() {
		t.Skip("needs a kube-apiserver (a cold build takes 15–25 min)")
	}
	env := kubeapi.Start(t)

	cs, err := kubernetes.NewForConfig(env.RestConfig)
	if err != nil {
		t.Fatal(err)
	}
	nss, err := cs.CoreV1().Namespaces().List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, ns := range nss.Items {
		found = found || ns.Name == "default"
	}
	if !found {
		t.Errorf("namespace default not listed: %v", nss.Items)
	}

	// The kubeconfig file must work as well as the rest.Config.
	cfg, err := clientcmd.BuildConfigFromFlags("", env.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cs2, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cs2.CoreV1().Namespaces().Get(context.Background(), "kube-system", metav1.GetOptions{}); err != nil {
		t.Errorf("via kubeconfig: %v", err)
	}
}
