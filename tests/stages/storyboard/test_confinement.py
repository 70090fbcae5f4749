"""Every file a storyboard names is confined, wherever it is named (issue 12).

One resolver (stages.storyboard.image_refs) for images, end images, chain anchors, LoRAs, source and
driving videos, the soundtrack and the files of the storyboard's own post stages (LUTs, colour
references, models), at validation, with the same roots and the same `images.allow_any_path`
switch. Each hostile storyboard below is one escape route; each must stop at validation (exit 2,
nothing written) with the key path in the message and no line of the target file in it.

No test here makes a real network request: remote cases either use a local HTTP server on
127.0.0.1 or a fake DNS (socket.getaddrinfo) with sockets disabled.
"""

from __future__ import annotations

import http.server
import socket
import threading
from pathlib import Path

import numpy as np
import pytest

from engine.registry import engine_spec
from flows.pipeline.prepare import prepare
from flows.render import EXIT_INVALID, EXIT_OK, run
from flows.config.settings import RenderSettings
from stages.storyboard.image_refs import ImagePolicy, ImageRefError, fetch
from stages.post.lut import LutError, format_cube, identity_table, parse_cube
from stages.storyboard.problems import StoryboardInvalid
from stages.render.steps import build_request
from stages.storyboard.validate import ValidateOptions, validate_storyboard
from tests.helpers.synthetic import write_png

SECRET_LINES = [f"SECRET-LINE-{i:02d}: the storyboard author must never see this" for i in
                range(1, 21)]
PASSWD = Path("/etc/passwd")
SHOT = "{id: a, prompt: x, duration: 1s}"


@pytest.fixture
def world(tmp_path: Path, monkeypatch) -> dict[str, Path]:
    """board/ (the storyboard's folder: a good image, LUT, bad LUTs, symlinks out), outside/
    (secrets: a text file whose lines must never be printed, an image, a valid LUT), shared/
    (an asset root) and a fake home folder (HOME points there) with a secret .profile."""
    folders = {name: tmp_path / name for name in ("board", "outside", "shared", "home")}
    for folder in folders.values():
        folder.mkdir()
    board, outside, shared, home = (folders[k] for k in ("board", "outside", "shared", "home"))
    secret = "\n".join(SECRET_LINES) + "\n"
    (outside / "secret.txt").write_text(secret)
    (home / ".profile").write_text(secret)
    write_png(outside / "secret.png", 64, 48, seed=2)
    write_png(board / "in.png", 64, 48)
    write_png(shared / "asset.png", 64, 48, seed=1)
    cube = format_cube(identity_table(3))
    for folder in (board, outside, shared, home):
        (folder / "look.cube").write_text(cube)
    (outside / "secret.cube").write_text(cube)
    (board / "huge.cube").write_text("LUT_3D_SIZE 100000\n" + "0 0 0\n" * 8)
    (board / "nan.cube").write_text("LUT_3D_SIZE 2\n" + "0 0 0\n" * 7 + "nan 0 0\n")
    (board / "inf.cube").write_text("LUT_3D_SIZE 2\n" + "0 0 0\n" * 7 + "0 inf 0\n")
    (board / "passwd.cube").write_text(secret)  # a text file that is no LUT, inside the folder
    (board / "link.png").symlink_to(outside / "secret.png")
    (board / "link.cube").symlink_to(outside / "secret.cube")
    (board / "link.mkv").symlink_to(outside / "secret.txt")
    (board / "link.wav").symlink_to(outside / "secret.txt")
    (board / "etc.cube").symlink_to(PASSWD)  # a LUT that is /etc/passwd, by another name
    monkeypatch.setenv("HOME", str(home))
    return folders


def secret_lines() -> list[str]:
    lines = list(SECRET_LINES)
    if PASSWD.is_file():
        lines += [line for line in PASSWD.read_text(errors="replace").splitlines()
                  if len(line.strip()) >= 12]
    return lines


def leaked(text: str) -> list[str]:
    return [line for line in secret_lines() if line in text]


# (name, storyboard text, key path that must be named, engine, images settings)
# {o} is the outside folder, {h} the fake home; everything else is relative to board/.
HOSTILE: list[tuple[str, str, str, str, dict]] = [
    # images
    ("image_absolute",
     "shots:\n  - {id: a, prompt: x, duration: 1s, image: '{o}/secret.png'}\n",
     "shots[0].image", "preview", {}),
    ("image_home", "shots:\n  - {id: a, prompt: x, duration: 1s, image: '~/.profile'}\n",
     "shots[0].image", "preview", {}),
    ("image_dotdot", "shots:\n  - {id: a, prompt: x, duration: 1s, image: ../outside/secret.png}\n",
     "shots[0].image", "preview", {}),
    ("image_symlink_out", "shots:\n  - {id: a, prompt: x, duration: 1s, image: link.png}\n",
     "shots[0].image", "preview", {}),
    ("image_nul_byte", 'shots:\n  - {id: a, prompt: x, duration: 1s, image: "in.png\\0../../x"}\n',
     "shots[0].image", "preview", {}),
    ("defaults_image", f"defaults: {{image: ../outside/secret.png}}\nshots:\n  - {SHOT}\n",
     "defaults.image", "preview", {}),
    ("defaults_end_image", f"defaults: {{end_image: '{{o}}/secret.png'}}\nshots:\n  - {SHOT}\n",
     "defaults.end_image", "preview", {}),
    ("segment_end_image", "shots:\n  - id: a\n    prompt: x\n    segments:\n"
     "      - {duration: 1s, end_image: ../outside/secret.png}\n",
     "shots[0].segments[0].end_image", "preview", {}),
    # chain anchors
    ("shot_chain_anchor", "shots:\n  - {id: a, prompt: x, duration: 1s, "
     "chain: {mode: last_frame, anchor: ../outside/secret.png}}\n",
     "shots[0].chain.anchor", "preview", {}),
    ("defaults_chain_anchor",
     f"defaults: {{chain: {{mode: last_frame, anchor: '{{o}}/secret.png'}}}}\n"
     f"shots:\n  - {SHOT}\n", "defaults.chain.anchor", "preview", {}),
    # post stages: LUT, colour reference, models
    ("post_lut_etc_passwd", f"shots:\n  - {SHOT}\npost: [{{stage: color, lut: /etc/passwd}}]\n",
     "post[0].lut", "preview", {}),
    ("post_lut_home", f"shots:\n  - {SHOT}\npost: [{{stage: color, lut: '~/.profile'}}]\n",
     "post[0].lut", "preview", {}),
    ("post_lut_dotdot",
     f"shots:\n  - {SHOT}\npost: [{{stage: color, lut: ../outside/secret.cube}}]\n",
     "post[0].lut", "preview", {}),
    ("post_lut_symlink_out", f"shots:\n  - {SHOT}\npost: [{{stage: color, lut: link.cube}}]\n",
     "post[0].lut", "preview", {}),
    ("post_lut_nul_byte", f'shots:\n  - {SHOT}\npost: [{{stage: color, lut: "look.cube\\0"}}]\n',
     "post[0].lut", "preview", {}),
    ("post_lut_url",
     f"shots:\n  - {SHOT}\npost: [{{stage: color, lut: 'http://127.0.0.1:9/x.cube'}}]\n",
     "post[0].lut", "preview", {"remote": True}),
    ("post_reference_absolute", f"shots:\n  - {SHOT}\n"
     "post: [{stage: color, reference: '{o}/secret.png'}]\n", "post[0].reference", "preview", {}),
    ("post_reference_dotdot", f"shots:\n  - {SHOT}\n"
     "post: [{stage: color, reference: ../outside/secret.png}]\n", "post[0].reference", "preview",
     {}),
    ("post_upscale_model_absolute", f"shots:\n  - {SHOT}\n"
     "post: [{stage: upscale, model: '{o}/secret.txt'}]\n", "post[0].model", "preview", {}),
    ("post_upscale_model_home", f"shots:\n  - {SHOT}\n"
     "post: [{stage: upscale, model: '~/.profile'}]\n", "post[0].model", "preview", {}),
    ("post_rife_model_dotdot", f"shots:\n  - {SHOT}\npost:\n  - {{stage: smooth}}\n"
     "  - {stage: interpolate, method: rife, model: ../outside/secret.txt}\n",
     "post[1].model", "preview", {}),
    # soundtrack
    ("audio_absolute", f"shots:\n  - {SHOT}\naudio: {{path: /etc/passwd}}\n", "audio.path",
     "preview", {}),
    ("audio_dotdot", f"shots:\n  - {SHOT}\naudio: {{path: ../outside/secret.txt}}\n", "audio.path",
     "preview", {}),
    ("audio_symlink_out", f"shots:\n  - {SHOT}\naudio: {{path: link.wav}}\n", "audio.path",
     "preview", {}),
    # LoRAs
    ("defaults_lora", f"defaults: {{loras: [{{path: ../outside/secret.safetensors}}]}}\n"
     f"shots:\n  - {SHOT}\n", "defaults.loras[0].path", "preview", {}),
    ("segment_lora", "shots:\n  - id: a\n    prompt: x\n    segments:\n"
     "      - {duration: 1s, loras: [{path: '{o}/secret.safetensors'}]}\n",
     "shots[0].segments[0].loras[0].path", "preview", {}),
    # v2v / animate input videos: on the shot, through defaults, and on an engine ignoring them
    ("v2v_source_video_shot", "shots:\n  - {id: a, prompt: x, frames: 9, "
     "source_video: ../outside/secret.mkv}\n", "shots[0].source_video", "wan_v2v", {}),
    ("v2v_source_video_defaults", "defaults: {source_video: ../outside/secret.mkv}\n"
     "shots:\n  - {id: a, prompt: x, frames: 9}\n", "defaults.source_video", "wan_v2v", {}),
    ("v2v_source_video_defaults_symlink", "defaults: {source_video: link.mkv}\n"
     "shots:\n  - {id: a, prompt: x, frames: 9}\n", "defaults.source_video", "wan_v2v", {}),
    ("animate_driving_video_defaults",
     "defaults: {driving_video: '{o}/secret.mp4', image: in.png}\n"
     "shots:\n  - {id: a, prompt: x, frames: 9}\n", "defaults.driving_video", "wan_animate", {}),
    ("ignored_source_video_defaults", f"defaults: {{source_video: '{{o}}/secret.txt'}}\n"
     f"shots:\n  - {SHOT}\n", "defaults.source_video", "preview", {}),
    ("ignored_driving_video_home", "shots:\n  - {id: a, prompt: x, duration: 1s, "
     "driving_video: '~/.profile'}\n", "shots[0].driving_video", "preview", {}),
    # LUT contents, checked at validation (inside the folder, or anywhere when allowed)
    ("lut_etc_passwd_allow_any_path",
     f"shots:\n  - {SHOT}\npost: [{{stage: color, lut: /etc/passwd}}]\n",
     "post[0].lut", "preview", {"allow_any_path": True}),
    ("lut_cube_link_to_etc_passwd_allow_any_path",
     f"shots:\n  - {SHOT}\npost: [{{stage: color, lut: etc.cube}}]\n", "post[0].lut", "preview",
     {"allow_any_path": True}),
    ("lut_text_file_in_folder", f"shots:\n  - {SHOT}\npost: [{{stage: color, lut: passwd.cube}}]\n",
     "post[0].lut", "preview", {}),
    ("lut_size_100000", f"shots:\n  - {SHOT}\npost: [{{stage: color, lut: huge.cube}}]\n",
     "post[0].lut", "preview", {}),
    ("lut_nan_values", f"shots:\n  - {SHOT}\npost: [{{stage: color, lut: nan.cube}}]\n",
     "post[0].lut", "preview", {}),
    ("lut_inf_values", f"shots:\n  - {SHOT}\npost: [{{stage: color, lut: inf.cube}}]\n",
     "post[0].lut", "preview", {}),
    # remote images to addresses that are not public (no allow-list)
    ("remote_loopback", "shots:\n  - {id: a, prompt: x, duration: 1s, "
     "image: 'http://127.0.0.1:9/x.png'}\n", "shots[0].image", "preview", {"remote": True}),
    ("remote_metadata_service", "shots:\n  - {id: a, prompt: x, duration: 1s, "
     "image: 'http://169.254.169.254/latest/meta-data/x.png'}\n", "shots[0].image", "preview",
     {"remote": True}),
    ("remote_private", "shots:\n  - {id: a, prompt: x, duration: 1s, "
     "image: 'http://10.0.0.1/x.png'}\n", "shots[0].image", "preview", {"remote": True}),
    ("remote_name_resolving_private", "shots:\n  - {id: a, prompt: x, duration: 1s, "
     "image: 'https://evil.test/x.png'}\n", "shots[0].image", "preview", {"remote": True}),
    ("remote_ipv4_mapped_loopback", "shots:\n  - {id: a, prompt: x, duration: 1s, "
     "image: 'http://[::ffff:127.0.0.1]:9/x.png'}\n", "shots[0].image", "preview",
     {"remote": True}),
]

FAKE_DNS = {"evil.test": "10.0.0.1", "metadata.test": "169.254.169.254", "cdn.test": "127.0.0.1"}


def fake_getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):  # noqa: A002
    address = FAKE_DNS.get(host, host)
    try:
        kind = socket.AF_INET6 if ":" in address else socket.AF_INET
        socket.inet_pton(kind, address)
    except OSError:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known") from None
    sockaddr = (address, port, 0, 0) if kind == socket.AF_INET6 else (address, port)
    return [(kind, socket.SOCK_STREAM, 6, "", sockaddr)]


class _NoSockets:
    def __init__(self, *args, **kwargs):
        raise AssertionError("a test tried to open a network connection")


@pytest.fixture
def offline(monkeypatch):
    """Fake DNS, and no socket can be created at all: a refused address never gets that far."""
    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo)
    monkeypatch.setattr(socket, "socket", _NoSockets)


def test_there_are_enough_hostile_storyboards():
    assert len(HOSTILE) >= 25 and len({case[0] for case in HOSTILE}) == len(HOSTILE)


@pytest.mark.parametrize("name,text,key,engine,images", HOSTILE, ids=[c[0] for c in HOSTILE])
def test_hostile_storyboards_stop_at_validation(world, offline, capsys, name, text, key, engine,
                                                 images):
    board = world["board"]
    path = board / "board.yaml"
    path.write_text(text.replace("{o}", str(world["outside"])), encoding="utf-8")
    if engine == "preview":  # the whole command: exit 2, nothing written
        settings = RenderSettings(storyboard=str(path), cwd=str(board), output_dir="out",
                                  images=images)
        code = run(settings)
        err = capsys.readouterr().err
        assert code == EXIT_INVALID, err
        assert not (board / "out").exists()
    else:  # engines with weights: validation on its own (it loads nothing)
        policy = ImagePolicy(**images)
        with pytest.raises(StoryboardInvalid) as info:
            validate_storyboard(path, engine_spec(engine), ValidateOptions(images=policy))
        err = str(info.value)
    assert f" {key}: " in err, err
    assert leaked(err) == [], err


# -- the message says why ------------------------------------------------------------------------


def messages(world, text: str, images: dict | None = None) -> str:
    path = world["board"] / "board.yaml"
    path.write_text(text.replace("{o}", str(world["outside"])), encoding="utf-8")
    with pytest.raises(StoryboardInvalid) as info:
        validate_storyboard(path, engine_spec("preview"),
                            ValidateOptions(images=ImagePolicy(**(images or {}))))
    return str(info.value)


@pytest.mark.parametrize("text,reason", [
    (f"shots:\n  - {SHOT}\npost: [{{stage: color, lut: /etc/passwd}}]\n",
     "outside the storyboard's folder"),
    (f"shots:\n  - {SHOT}\npost: [{{stage: color, lut: '~/.profile'}}]\n", "home folder"),
    (f"shots:\n  - {SHOT}\npost: [{{stage: color, lut: huge.cube}}]\n", "out of range"),
    (f"shots:\n  - {SHOT}\npost: [{{stage: color, lut: nan.cube}}]\n", "finite"),
    (f"shots:\n  - {SHOT}\npost: [{{stage: color, lut: passwd.cube}}]\n",
     "exactly one of LUT_3D_SIZE"),
    (f"shots:\n  - {SHOT}\npost: [{{stage: color, lut: in.png}}]\n", "not a .cube file"),
    (f'shots:\n  - {SHOT}\npost: [{{stage: color, lut: "look.cube\\0x"}}]\n', "NUL byte"),
    (f"defaults: {{source_video: ../outside/secret.txt}}\nshots:\n  - {SHOT}\n",
     "outside the storyboard's folder"),
])
def test_messages_give_the_reason(world, text, reason):
    err = messages(world, text)
    assert reason in err, err
    assert leaked(err) == [], err


def test_a_cube_parse_error_never_quotes_the_file():
    text = "\n".join(SECRET_LINES[:3]) + "\nLUT_3D_SIZE 2\n0 0 0\n" + SECRET_LINES[3] + "\n"
    for bad in (text, "LUT_3D_SIZE " + SECRET_LINES[0] + "\n", "LUT_3D_SIZE 2\n1 2 " +
                SECRET_LINES[1] + "\n", "DOMAIN_MIN " + SECRET_LINES[2] + "\n"):
        with pytest.raises(LutError) as info:
            parse_cube(bad, "look.cube")
        assert leaked(str(info.value)) == [] and "look.cube" in str(info.value)


def test_an_oversized_cube_fails_on_its_size_line_before_the_table_is_read():
    with pytest.raises(LutError, match="table size 100000 is out of range"):
        parse_cube("LUT_3D_SIZE 100000\n" + "0 0 0\n" * 10, "big.cube")
    with pytest.raises(LutError, match="found more"):
        parse_cube("LUT_3D_SIZE 2\n" + "0 0 0\n" * 9, "long.cube")


# -- remote fetches: loopback / private / link-local refused, after every redirect ----------------


class _Handler(http.server.BaseHTTPRequestHandler):
    hits: list = []
    body = b""
    redirect_to = ""

    def do_GET(self):  # noqa: N802 - http.server's naming
        _Handler.hits.append(self.path)
        if self.path == "/hop":
            self.send_response(302)
            self.send_header("Location", _Handler.redirect_to)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(_Handler.body)))
        self.end_headers()
        self.wfile.write(_Handler.body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path: Path):
    _Handler.body = write_png(tmp_path / "served.png", 64, 48, seed=3).read_bytes()
    _Handler.hits = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    port = httpd.server_address[1]
    _Handler.redirect_to = f"http://127.0.0.1:{port}/pic.png"
    yield port
    httpd.shutdown()
    httpd.server_close()


def _shot_with(image: str) -> str:
    return f"shots:\n  - {{id: a, prompt: x, duration: 1s, image: '{image}'}}\n"


def test_a_local_server_is_refused_by_default_and_reached_through_the_allow_list(world, server):
    url = f"http://127.0.0.1:{server}/pic.png"
    err = messages(world, _shot_with(url), {"remote": True})
    assert "shots[0].image" in err and "127.0.0.1" in err and "images.remote_allow" in err, err
    assert _Handler.hits == []  # refused before connecting
    for allow in (("127.0.0.1",), ("127.0.0.0/8",)):
        policy = ImagePolicy(remote=True, remote_allow=allow)
        path = world["board"] / "board.yaml"
        vs = validate_storyboard(path, engine_spec("preview"), ValidateOptions(images=policy))
        assert vs.images[url].read_bytes() == _Handler.body


def test_the_allow_list_comes_from_the_config_through_the_command(world, server, capsys):
    board = world["board"]
    path = board / "board.yaml"
    path.write_text(_shot_with(f"http://127.0.0.1:{server}/pic.png"))
    settings = RenderSettings(storyboard=str(path), cwd=str(board), output_dir="out",
                              dry_run=True, images={"remote": True})
    assert run(settings) == EXIT_INVALID and _Handler.hits == []
    assert "images.remote_allow" in capsys.readouterr().err
    settings.images = {"remote": True, "remote_allow": ["127.0.0.1"]}
    assert run(settings) == EXIT_OK and _Handler.hits == ["/pic.png"]


def test_a_redirect_to_loopback_is_refused_even_from_an_allowed_host(world, server, monkeypatch):
    """cdn.test (allowed by name) answers with a redirect to 127.0.0.1 (not allowed)."""
    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo)
    url = f"http://cdn.test:{server}/hop"
    with pytest.raises(ImageRefError, match="127.0.0.1.*non-public"):
        fetch(url, 100_000, 5, allow=("cdn.test",))
    assert _Handler.hits == ["/hop"]  # the first hop only; the loopback target never asked
    err = messages(world, _shot_with(url), {"remote": True, "remote_allow": ("cdn.test",)})
    assert "shots[0].image" in err and "remote_allow" in err, err
    # With the loopback address allowed too, the same redirect is followed.
    assert fetch(url, 100_000, 5, allow=("cdn.test", "127.0.0.1")) == _Handler.body


@pytest.mark.parametrize("url", ["http://127.0.0.1/x.png", "http://169.254.169.254/x.png",
                                 "http://10.0.0.1/x.png", "http://192.168.1.1/x.png",
                                 "http://[::1]/x.png", "http://[fe80::1]/x.png",
                                 "http://0.0.0.0/x.png", "http://metadata.test/x.png",
                                 "http://evil.test/x.png", "http://[::ffff:10.0.0.1]/x.png"])
def test_non_public_addresses_are_refused_without_connecting(offline, url):
    with pytest.raises(ImageRefError, match="non-public"):
        fetch(url, 1000, 1)


def test_the_allow_list_opens_named_hosts_and_networks_only(offline):
    # Allowed: the check passes and the fetch goes on to connect (sockets are off in this test).
    for url, allow in (("http://evil.test/x.png", ("evil.test",)),
                       ("http://10.0.0.1/x.png", ("10.0.0.0/8",)),
                       ("http://169.254.169.254/x.png", ("169.254.169.254",))):
        with pytest.raises(AssertionError, match="network connection"):
            fetch(url, 1000, 1, allow=allow)
    with pytest.raises(ImageRefError, match="non-public"):
        fetch("http://10.0.0.1/x.png", 1000, 1, allow=("192.168.0.0/16", "evil.test"))


# -- what stays allowed ----------------------------------------------------------------------------


ALL_KINDS = (
    "defaults: {{end_image: {img}}}\n"
    "shots:\n"
    "  - {{id: a, prompt: x, duration: 1s, image: {img}, chain: {{mode: last_frame, "
    "anchor: {img}}}}}\n"
    "post: [{{stage: color, lut: {lut}, reference: {img}}}]\n"
)


def _dry_run(world, text: str, images: dict, post=None) -> int:
    board = world["board"]
    path = board / "board.yaml"
    path.write_text(text, encoding="utf-8")
    settings = RenderSettings(storyboard=str(path), cwd=str(board), output_dir="out",
                              dry_run=True, images=images)
    if post is not None:
        settings.post, settings.post_override = post, True
    return run(settings)


def test_files_inside_the_folder_asset_roots_and_allow_any_path_still_work(world, capsys):
    shared, outside = world["shared"], world["outside"]
    assert _dry_run(world, ALL_KINDS.format(img="in.png", lut="look.cube"), {}) == EXIT_OK
    for img, lut in (("../shared/asset.png", "../shared/look.cube"),
                     (f"{shared}/asset.png", f"{shared}/look.cube")):
        text = ALL_KINDS.format(img=img, lut=lut)
        assert _dry_run(world, text, {"asset_roots": [str(shared)]}) == EXIT_OK, \
            capsys.readouterr().err
        assert _dry_run(world, text, {}) == EXIT_INVALID
    anywhere = {"allow_any_path": True}
    for img, lut in ((f"{outside}/secret.png", f"{outside}/secret.cube"),
                     ("link.png", "link.cube"), ("../outside/secret.png", "~/look.cube")):
        assert _dry_run(world, ALL_KINDS.format(img=img, lut=lut), anywhere) == EXIT_OK, \
            capsys.readouterr().err


def test_command_line_chains_are_trusted_config(world, capsys):
    """post= on the command line (and conf/post/ presets) are not storyboard data: an absolute
    or ~ path there still works; a bad LUT there is still caught before rendering."""
    text = f"shots:\n  - {SHOT}\n"
    outside = world["outside"]
    for lut in (f"{outside}/secret.cube", "~/look.cube"):
        code = _dry_run(world, text, {}, post=[{"stage": "color", "lut": lut}])
        assert code == EXIT_OK, capsys.readouterr().err
    assert _dry_run(world, text, {}, post=["smooth"]) == EXIT_OK
    code = _dry_run(world, text, {}, post=[{"stage": "color", "lut": str(world["board"] /
                                                                          "nan.cube")}])
    assert code == EXIT_INVALID and "finite" in capsys.readouterr().err


def test_an_engine_that_ignores_source_video_never_opens_it(world):
    board = world["board"]
    (board / "clip.mkv").write_bytes(b"not a video at all")
    path = board / "board.yaml"
    path.write_text("defaults: {source_video: clip.mkv, driving_video: missing.mp4}\n"
                    f"shots:\n  - {SHOT}\n")
    prepared = prepare(RenderSettings(storyboard=str(path), cwd=str(board), output_dir="out"))
    assert any("source_video is ignored" in w for w in prepared.storyboard.warnings)
    job = next(prepared.plan.segments())
    assert job.source_video is None and job.driving_video is None
    # And a request for an engine that does not honour the key does not read it either.
    import dataclasses

    job = dataclasses.replace(job, source_video=board / "clip.mkv")
    request = build_request(job, None, honours=frozenset())
    assert request.source_video is None


def test_a_good_lut_is_parsed_once_at_validation_and_reused(world):
    from stages.post.color import cached_cube

    cached_cube.cache_clear()
    path = world["board"] / "board.yaml"
    path.write_text(f"shots:\n  - {SHOT}\npost: [{{stage: color, lut: look.cube}}]\n")
    vs = validate_storyboard(path, engine_spec("preview"), ValidateOptions())
    step = vs.post[0]
    assert step.params.lut == str((world["board"] / "look.cube").resolve())
    assert cached_cube.cache_info().currsize == 1
    lut = cached_cube(step.params.lut, step.digests["lut"])
    assert np.array_equal(lut.table, identity_table(3)) and cached_cube.cache_info().hits >= 1


def test_an_unreadable_model_file_is_named_not_quoted(world):
    pytest.importorskip("torch")
    from stages.post.weights import ModelFileError, read_state_dict

    with pytest.raises(ModelFileError, match="cannot read model file") as info:
        read_state_dict(world["outside"] / "secret.txt")
    assert leaked(str(info.value)) == [] and "SECRET" not in str(info.value)


def test_a_reference_validation_never_saw_is_refused_not_guessed(world):
    """Planning opens only what the resolver checked: an unrecorded reference is an error, never
    a path built next to the storyboard (the old fallback could reach `../`)."""
    path = world["board"] / "board.yaml"
    path.write_text("shots:\n  - {id: a, prompt: x, duration: 1s, image: in.png}\n",
                    encoding="utf-8")
    vs = validate_storyboard(path, engine_spec("preview"), ValidateOptions())
    assert vs.image_path("in.png") == (world["board"] / "in.png").resolve()
    with pytest.raises(LookupError, match="not checked by validation"):
        vs.image_path("../outside/secret.png")


def test_a_file_swapped_for_a_link_after_validation_is_not_opened(world):
    """Validation checked in.png; a link put in its place before the segment renders would lead
    out of the storyboard's folder, so the render refuses it instead of following it."""
    board = world["board"]
    path = board / "board.yaml"
    path.write_text("shots:\n  - {id: a, prompt: x, duration: 1s, image: in.png}\n")
    prepared = prepare(RenderSettings(storyboard=str(path), cwd=str(board), output_dir="out"))
    job = next(prepared.plan.segments())
    assert build_request(job, None).start_image is not None  # untouched: it opens
    (board / "in.png").unlink()
    (board / "in.png").symlink_to(world["outside"] / "secret.png")
    with pytest.raises(ImageRefError, match="changed since the storyboard was validated"):
        build_request(job, None)
