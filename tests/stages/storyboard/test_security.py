"""Storyboards are untrusted data: where images may come from, where a render may write, what is
never evaluated and what never reaches a shell."""

from __future__ import annotations

import ast
import http.server
import threading
import time
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from engine.preview import PREVIEW_SPEC
from flows.pipeline.prepare import prepare, print_plan
from flows.render import EXIT_INVALID, run
from flows.config.policies import image_policy
from flows.config.settings import ConfigInvalid, RenderSettings
from stages.storyboard.image_refs import ImagePolicy, ImageRefError, fetch
from stages.store.output_paths import UnsafeOutputPath, check_name, render_folder
from stages.plan.build import build_plan
from stages.storyboard.problems import StoryboardInvalid
from stages.storyboard.validate import ValidateOptions, validate_storyboard
from tests.helpers.synthetic import write_png

ROOT = Path(__file__).resolve().parents[3]


def board(folder: Path, text: str) -> Path:
    path = folder / "board.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def problems(path: Path, policy: ImagePolicy = ImagePolicy()) -> list[str]:
    with pytest.raises(StoryboardInvalid) as info:
        validate_storyboard(path, PREVIEW_SPEC, ValidateOptions(images=policy))
    return [str(p) for p in info.value.problems]


# -- output names ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["..", ".", "../up", "a/b", "/abs", ".hidden", "", "a..b",
                                  "x" * 201, "tab\tname"])
def test_unsafe_output_names_are_refused(name):
    with pytest.raises(UnsafeOutputPath):
        check_name(name, "storyboard name")


@pytest.mark.parametrize("name", ["ep01", "The_Lighthouse-2", "fps=12,engine=svd", "v1.2"])
def test_ordinary_names_are_accepted(name):
    assert check_name(name, "storyboard name") == name


def test_symlinked_render_folders_are_refused(tmp_path: Path):
    root, elsewhere = tmp_path / "renders", tmp_path / "elsewhere"
    root.mkdir()
    elsewhere.mkdir()
    assert render_folder(root, "ep01") == root / "ep01"  # nothing exists yet: fine
    (root / "ep01").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(UnsafeOutputPath, match="is a symlink"):
        render_folder(root, "ep01")
    (root / "ep01").unlink()
    (root / "ep01").mkdir()
    (root / "ep01" / "shots").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(UnsafeOutputPath, match="shots is a symlink"):
        render_folder(root, "ep01")
    with pytest.raises(UnsafeOutputPath):
        render_folder(root, "ep01", variant="..")


def test_a_symlinked_render_folder_stops_the_render_before_anything_is_written(tmp_path, capsys):
    path = board(tmp_path, "shots:\n  - {id: a, prompt: x, duration: 1s}\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "board").symlink_to(elsewhere, target_is_directory=True)
    code = run(RenderSettings(storyboard=str(path), cwd=str(tmp_path), output_dir="out"))
    err = capsys.readouterr().err
    assert code == EXIT_INVALID and "is a symlink" in err, err
    assert list(elsewhere.iterdir()) == []
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["board"]


# -- image paths -----------------------------------------------------------------------------------


@pytest.fixture
def layout(tmp_path: Path) -> dict[str, Path]:
    """board/ (the storyboard's folder) with in.png, shared/ (an asset root) with asset.png,
    private/ (neither) with secret.png, and links from board/ to both."""
    folders = {name: tmp_path / name for name in ("board", "shared", "private")}
    for folder in folders.values():
        folder.mkdir()
    write_png(folders["board"] / "in.png", 64, 48)
    write_png(folders["shared"] / "asset.png", 64, 48, seed=1)
    write_png(folders["private"] / "secret.png", 64, 48, seed=2)
    (folders["board"] / "to_secret.png").symlink_to(folders["private"] / "secret.png")
    (folders["board"] / "to_asset.png").symlink_to(folders["shared"] / "asset.png")
    return folders


def shot_with(image: str) -> str:
    return f"shots:\n  - {{id: a, prompt: x, duration: 1s, image: '{image}'}}\n"


@pytest.mark.parametrize("ref", ["../private/secret.png", "{private}/secret.png", "to_secret.png",
                                 "../shared/asset.png"])
def test_images_outside_the_storyboard_folder_are_refused(layout, ref):
    path = board(layout["board"], shot_with(ref.format(private=layout["private"])))
    found = problems(path)
    assert len(found) == 1 and "shots[0].image" in found[0], found
    assert "outside the storyboard's folder" in found[0], found


def test_asset_roots_and_allow_any_path_open_the_door_explicitly(layout):
    roots = ImagePolicy(asset_roots=(layout["shared"],))
    for ref in ("../shared/asset.png", f"{layout['shared']}/asset.png", "to_asset.png", "in.png"):
        path = board(layout["board"], shot_with(ref))
        validate_storyboard(path, PREVIEW_SPEC, ValidateOptions(images=roots))
    path = board(layout["board"], shot_with("to_secret.png"))
    assert "outside" in problems(path, roots)[0]  # an asset root is not "anywhere"
    anywhere = ImagePolicy(allow_any_path=True)
    vs = validate_storyboard(path, PREVIEW_SPEC, ValidateOptions(images=anywhere))
    assert vs.images["to_secret.png"] == (layout["private"] / "secret.png").resolve()


def test_image_settings_come_from_the_config(layout):
    settings = RenderSettings(storyboard="x", cwd=str(layout["board"]),
                              images={"asset_roots": ["../shared"], "remote": True,
                                      "remote_max_mb": 2, "remote_timeout_s": 5})
    policy = image_policy(settings)
    assert policy.remote_allow == ()
    assert policy.asset_roots == (layout["shared"].resolve(),)
    assert policy.remote and policy.remote_max_bytes == 2 * 1024 * 1024
    assert policy.remote_timeout_s == 5.0 and not policy.allow_any_path
    with pytest.raises(ConfigInvalid, match="images.remote='yes'"):
        image_policy(RenderSettings(storyboard="x", images={"remote": "yes"}))
    allowed = image_policy(RenderSettings(storyboard="x", images={
        "remote_allow": ["assets.lan", "10.0.5.0/24", "127.0.0.1", "::1"]}))
    assert allowed.remote_allow == ("assets.lan", "10.0.5.0/24", "127.0.0.1", "::1")
    for bad in ("10.0.0.0/8", ["bad host!"], [""], [3]):
        with pytest.raises(ConfigInvalid, match="images.remote_allow"):
            image_policy(RenderSettings(storyboard="x", images={"remote_allow": bad}))


def test_confined_images_render_end_to_end_through_prepare(layout):
    path = board(layout["board"], shot_with("../shared/asset.png"))
    settings = RenderSettings(storyboard=str(path), cwd=str(layout["board"]), output_dir="out",
                              images={"asset_roots": [str(layout["shared"])]})
    job = next(prepare(settings).plan.segments())
    assert job.start.image == (layout["shared"] / "asset.png").resolve()


# -- remote images -----------------------------------------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    routes: dict = {}
    hits: list = []

    def do_GET(self):  # noqa: N802 - http.server's naming
        _Handler.hits.append(self.path)
        route = _Handler.routes.get(self.path)
        if route is None:
            self.send_error(404, "Not Found")
            return
        route(self)

    def log_message(self, *args):  # quiet
        pass


def _send(body: bytes, length: bool = True):
    def respond(handler):
        handler.send_response(200)
        handler.send_header("Content-Type", "image/png")
        if length:
            handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)
        handler.wfile.flush()
    return respond


def _trickle(body: bytes, pause: float):
    def respond(handler):
        handler.send_response(200)
        handler.end_headers()
        for i in range(0, len(body), 16):
            handler.wfile.write(body[i:i + 16])
            handler.wfile.flush()
            time.sleep(pause)
    return respond


def _stall(seconds: float):
    def respond(handler):
        time.sleep(seconds)
        _send(b"late")(handler)
    return respond


def _redirect(location: str):
    def respond(handler):
        handler.send_response(302)
        handler.send_header("Location", location)
        handler.end_headers()
    return respond


@pytest.fixture
def server(tmp_path: Path):
    png = write_png(tmp_path / "served.png", 64, 48, seed=3).read_bytes()
    _Handler.hits = []
    _Handler.routes = {
        "/pic.png": _send(png),
        "/big.png": _send(b"\0" * 300_000),
        "/big-no-length.png": _send(b"\0" * 300_000, length=False),
        "/slow.png": _stall(3.0),
        "/trickle.png": _trickle(b"\0" * 4000, 0.05),
        "/to-ftp": _redirect("ftp://127.0.0.1/secret.png"),  # urllib alone would follow it
        "/to-file": _redirect("file:///etc/passwd"),
    }
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", png
    httpd.shutdown()
    httpd.server_close()


def test_remote_images_are_off_by_default_and_never_fetched(server, tmp_path):
    base, _ = server
    path = board(tmp_path, shot_with(f"{base}/pic.png"))
    found = problems(path)
    assert "remote images are off" in found[0], found
    assert _Handler.hits == []


def test_remote_image_when_enabled_is_fetched_hashed_and_used(server, tmp_path):
    base, png = server
    path = board(tmp_path, shot_with(f"{base}/pic.png"))
    policy = ImagePolicy(remote=True, remote_max_bytes=100_000, remote_timeout_s=5,
                         remote_allow=("127.0.0.1",))  # the test server is on loopback
    vs = validate_storyboard(path, PREVIEW_SPEC, ValidateOptions(images=policy))
    local = vs.images[f"{base}/pic.png"]
    assert local.read_bytes() == png and _Handler.hits == ["/pic.png"]  # fetched once
    job = next(build_plan(vs, {"engine": "preview"}).segments())
    assert job.start.kind == "image" and job.start.image == local


@pytest.mark.parametrize("route,message", [
    ("/big.png", "more than the limit"),            # Content-Length says so
    ("/big-no-length.png", "more than the limit"),  # counted while streaming
    ("/slow.png", "did not answer within"),         # no answer in time
    ("/trickle.png", "took longer than"),           # answers, but too slowly in total
    ("/missing.png", "answered 404"),
    ("/to-ftp", "only http and https are followed"),  # a redirect to another scheme
    ("/to-file", "not allowed"),
])
def test_remote_fetch_limits(server, route, message):
    base, _ = server
    started = time.monotonic()
    with pytest.raises(ImageRefError, match=message):
        fetch(f"{base}{route}", max_bytes=100_000, timeout_s=0.5, allow=("127.0.0.0/8",))
    assert time.monotonic() - started < 5  # the limit holds (0.5 s, plus one socket wait)


def test_remote_limit_problem_names_the_key_path(server, tmp_path):
    base, _ = server
    path = board(tmp_path, shot_with(f"{base}/big.png"))
    found = problems(path, ImagePolicy(remote=True, remote_max_bytes=1000, remote_timeout_s=5,
                                       remote_allow=("127.0.0.1",)))
    assert "shots[0].image" in found[0] and "more than the limit of 1000" in found[0], found


def test_only_http_and_https_are_fetched():
    for url in ("file:///etc/passwd", "ftp://127.0.0.1/x.png", "gopher://x/"):
        with pytest.raises(ImageRefError, match="only http and https"):
            fetch(url, 1000, 1)


# -- nothing in a storyboard is evaluated ----------------------------------------------------------


def test_omegaconf_resolvers_in_storyboards_are_never_evaluated(tmp_path, monkeypatch, capsys):
    calls = []
    OmegaConf.register_new_resolver("reelforge_trap", lambda *a: calls.append(a) or "TRAPPED",
                                    replace=True)
    monkeypatch.setenv("REELFORGE_SECRET", "hunter2")
    text = (
        'title: "${oc.env:REELFORGE_SECRET}"\n'
        "defaults:\n"
        '  negative: "${reelforge_trap:}"\n'
        "shots:\n"
        '  - {id: a, prompt: "${oc.env:REELFORGE_SECRET} ${reelforge_trap:x}", duration: 1s}\n'
        '  - {id: b, prompt: "${oc.decode:\'{a: 1}\'}", duration: 1s}\n'
    )
    path = board(tmp_path, text)
    prepared = prepare(RenderSettings(storyboard=str(path), cwd=str(tmp_path)))
    jobs = list(prepared.plan.segments())
    assert jobs[0].prompt == "${oc.env:REELFORGE_SECRET} ${reelforge_trap:x}"
    assert jobs[0].negative == "${reelforge_trap:}"
    assert jobs[1].prompt == "${oc.decode:'{a: 1}'}"
    assert prepared.storyboard.model.title == "${oc.env:REELFORGE_SECRET}"
    print_plan(prepared)
    out = capsys.readouterr().out
    assert "hunter2" not in out and "TRAPPED" not in out and calls == []


def test_interpolation_in_a_post_stage_value_is_a_validation_error_not_a_lookup(tmp_path,
                                                                                monkeypatch):
    monkeypatch.setenv("REELFORGE_FACTOR", "2")
    path = board(tmp_path, "shots:\n  - {id: a, prompt: x, duration: 1s}\n"
                           "post:\n  - {stage: interpolate, factor: '${oc.env:REELFORGE_FACTOR}'}\n")
    found = problems(path)
    assert "post" in found[0] and "${oc.env:REELFORGE_FACTOR}" in found[0], found


# -- nothing reaches a shell -----------------------------------------------------------------------


SHELL_CALLS = {("os", "system"), ("os", "popen"), ("subprocess", "getoutput"),
               ("subprocess", "getstatusoutput"), ("os", "execl"), ("os", "execlp")}


def test_no_code_path_goes_through_a_shell():
    """Prompts and paths travel in argument lists only: no shell=True, no os.system/popen."""
    offenders = []
    for folder in ("engine", "stages", "flows"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if isinstance(node, ast.keyword) and node.arg == "shell" and not (
                        isinstance(node.value, ast.Constant) and node.value.value is False):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.value.lineno} shell=")
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                        isinstance(node.func.value, ast.Name) and \
                        (node.func.value.id, node.func.attr) in SHELL_CALLS:
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} "
                                     f"{node.func.value.id}.{node.func.attr}")
    assert offenders == []
