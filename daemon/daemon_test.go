package daemon

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"

	petrelpb "github.com/petrel-net/petrel/proto"
)

// freePort finds a free TCP port on a loopback address.
func freePort(t *testing.T, ip string) int {
	t.Helper()
	l, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Skipf("cannot listen on %s: %v", ip, err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// runDaemon starts RunStandalone on a config in a temp dir and returns its
// socket, the reload channel and a stop function that waits for exit.
func runDaemon(t *testing.T, config string) (socket, configPath string, reload chan struct{}) {
	t.Helper()
	dir := t.TempDir()
	socket = filepath.Join(dir, "petrel.sock")
	configPath = filepath.Join(dir, "petrel.yaml")
	// These tests run in the host's namespace: never touch its routes.
	config += "kernel: {enabled: false}\n"
	if err := os.WriteFile(configPath, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	reload = make(chan struct{})
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- RunStandalone(ctx, StandaloneOptions{ConfigPath: configPath, Socket: socket, Reload: reload, Ready: ready})
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("daemon exited: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("daemon not ready")
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("daemon returned %v", err)
		}
	})
	return socket, configPath, reload
}

func dial(t *testing.T, socket string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func TestAPIServesStatusRoutesHealthAndReflection(t *testing.T) {
	port := freePort(t, "127.0.30.1")
	socket, _, _ := runDaemon(t, fmt.Sprintf(`
routerID: 127.0.30.1
listen: {address: 127.0.30.1, port: %d}
peers: [{address: 127.0.30.2, asNumber: 64512, port: %d}]
originate: [192.168.30.0/26, 192.168.31.0/26]
`, port, port))
	fi, err := os.Stat(socket)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode = %v, want 0600", fi.Mode().Perm())
	}

	conn := dial(t, socket)
	ctx := context.Background()
	api := petrelpb.NewPetrelClient(conn)

	info, err := api.GetInfo(ctx, &petrelpb.GetInfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if info.RouterId != "127.0.30.1" || info.AsNumber != 64512 || info.Mode != "standalone" || len(info.Originated) != 2 {
		t.Errorf("info = %+v", info)
	}
	peers, err := api.ListPeers(ctx, &petrelpb.ListPeersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(peers.Peers) != 1 || peers.Peers[0].Name != "Node_127_0_30_2" || peers.Peers[0].State == "Established" {
		t.Errorf("peers = %+v", peers.Peers)
	}

	stream, err := api.ListRoutes(ctx, &petrelpb.ListRoutesRequest{Within: "192.168.31.0/24"})
	if err != nil {
		t.Fatal(err)
	}
	var prefixes []string
	for {
		batch, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range batch.Routes {
			prefixes = append(prefixes, r.Prefix)
		}
	}
	if strings.Join(prefixes, ",") != "192.168.31.0/26" {
		t.Errorf("routes within 192.168.31.0/24 = %v", prefixes)
	}
	bad, err := api.ListRoutes(ctx, &petrelpb.ListRoutesRequest{Within: "nope"})
	if err == nil {
		_, err = bad.Recv() // a stream's error arrives with its first message
	}
	if err == nil || !strings.Contains(err.Error(), `within: "nope" is not a CIDR prefix`) {
		t.Errorf("bad within: %v", err)
	}

	watch, err := api.WatchRoutes(ctx, &petrelpb.WatchRoutesRequest{Replay: true})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for len(got) < 2 {
		ev, err := watch.Recv()
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range ev.Routes {
			got[r.Prefix] = len(r.Paths) > 0 && r.Paths[0].Local && r.Paths[0].Best
		}
	}
	if !got["192.168.30.0/26"] || !got["192.168.31.0/26"] {
		t.Errorf("watch replay = %v", got)
	}

	health, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: "petrel.v1.Petrel"})
	if err != nil || health.Status != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("health = %v, %v", health, err)
	}

	refl, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := refl.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	resp, err := refl.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var services []string
	for _, s := range resp.GetListServicesResponse().GetService() {
		services = append(services, s.Name)
	}
	if !strings.Contains(strings.Join(services, ","), "petrel.v1.Petrel") {
		t.Errorf("reflection lists %v", services)
	}
}

func TestReloadAppliesOriginateChangesAndRefusesBrokenFiles(t *testing.T) {
	listen := fmt.Sprintf("listen: {address: 127.0.31.1, port: %d}\n", freePort(t, "127.0.31.1"))
	socket, configPath, reload := runDaemon(t, "routerID: 127.0.31.1\n"+listen+"originate: [192.168.40.0/26]\n")
	api := petrelpb.NewPetrelClient(dial(t, socket))
	originated := func() string {
		info, err := api.GetInfo(context.Background(), &petrelpb.GetInfoRequest{})
		if err != nil {
			t.Fatal(err)
		}
		return strings.Join(info.Originated, ",")
	}
	waitOriginated := func(want string) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if originated() == want {
				return
			}
		}
		t.Fatalf("originated = %q, want %q", originated(), want)
	}

	os.WriteFile(configPath, []byte("routerID: 127.0.31.1\n"+listen+"originate: [192.168.41.0/26]\nkernel: {enabled: false}\n"), 0o644)
	reload <- struct{}{}
	waitOriginated("192.168.41.0/26")

	os.WriteFile(configPath, []byte("routerID: 127.0.31.1\noriginate: [not-a-prefix]\n"), 0o644)
	reload <- struct{}{}
	time.Sleep(200 * time.Millisecond)
	waitOriginated("192.168.41.0/26")
}

func TestSecondDaemonOnSameSocketIsRefused(t *testing.T) {
	socket, _, _ := runDaemon(t, fmt.Sprintf("routerID: 127.0.32.1\nlisten: {address: 127.0.32.1, port: %d}\n", freePort(t, "127.0.32.1")))
	dir := t.TempDir()
	cfg := filepath.Join(dir, "b.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("routerID: 127.0.32.2\nlisten: {address: 127.0.32.2, port: %d}\nkernel: {enabled: false}\n", freePort(t, "127.0.32.2"))), 0o644)
	err := RunStandalone(context.Background(), StandaloneOptions{ConfigPath: cfg, Socket: socket})
	if err == nil || !strings.Contains(err.Error(), "another petrel daemon") {
		t.Fatalf("second daemon: %v", err)
	}
}
