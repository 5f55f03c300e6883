"""The web app under ZeroGPU's process model, through ``gradio_client``: every model call in a forked worker.

`ForkedGPU` keeps the contract of ``spaces.GPU`` (fork context, pickled arguments and results, a worker reused
or freshly forked per call); each worker mode must give two clients at once exactly what an in-process
`Session` gives: masks, prompts, undo and redo, exports and session files. A worker killed during a run gives
a message and loses no stored mask.
"""

from __future__ import annotations

import json
import threading

import pytest
from gradio_client import Client, handle_file

from sam2_ui import Session
from sam2_ui.engine.forked_gpu import ForkedGPU
from sam2_ui.engine.model_worker import serve
from sam2_ui.engine.worker_executor import WorkerExecutors
from tests.support.app_helpers import masks_from_api, running_app, track_then_stop, write_clip
from tests.support.session_helpers import all_masks, assert_same_masks, block_box, disc_centre, predictor

pytestmark = pytest.mark.server

NUM_FRAMES = 6


def launched(tmp_path_factory, mode: str):
    gpu = ForkedGPU(mode, seed=1)
    return gpu, running_app(
        tmp_path_factory.mktemp(f"zero-{mode}"), executor=WorkerExecutors(gpu(serve), predictor())
    )


def client_for(url: str, root) -> Client:
    return Client(url, verbose=False, download_files=str(root / "client_downloads"))


def scenario(act, point: tuple[float, float]) -> None:
    """The same edits on a client or a session: ``act(verb, *args)``."""
    act("add_object", "ball")
    act("add_object", "box")
    act("add_point", 0, 1, *point, True)
    act("add_box", 0, 2, *block_box(0))
    act("add_point", 0, 1, 60.0, 20.0, True)
    act("remove_point", 0, 1, 1)
    act("propagate", "forward", 0)
    act("add_point", 3, 1, *disc_centre(3), False)
    act("undo")
    act("redo")
    act("propagate", "both", 3)


def on_client(client: Client):
    def act(verb, *args):
        if verb == "propagate":
            return list(client.submit(*args, api_name="/propagate"))
        if verb in ("undo", "redo"):
            return client.predict(verb, api_name="/command")
        return client.predict(*args, api_name=f"/{verb}")

    return act


def on_session(session: Session):
    def act(verb, *args):
        if verb == "propagate":
            return list(session.propagate(args[0], start=args[1]))
        if verb == "add_object":
            return session.add_object(*args)
        return getattr(session, verb)(*args)

    return act


def client_state(client: Client, tmp_path) -> dict:
    masks = {}
    for frame in range(NUM_FRAMES):
        for obj, mask in masks_from_api(client.predict(frame, api_name="/masks")).items():
            masks[frame, obj] = mask
    view = client.predict(api_name="/view")
    coco = json.loads(open(client.predict(api_name="/export_coco")).read())
    saved = json.loads(open(client.predict(api_name="/export_session")).read())
    return {"masks": masks, "view": view, "coco": coco, "saved": saved}


@pytest.mark.parametrize("mode", ["fresh", "reuse", "random"])
def test_two_clients_on_forked_workers_get_what_an_in_process_session_gives(
    tmp_path_factory, tmp_path, clip, mode
):
    gpu, app_context = launched(tmp_path_factory, mode)
    points = [disc_centre(0), (disc_centre(0)[0] + 4, disc_centre(0)[1] - 3)]
    results: dict[int, dict] = {}
    errors: list[BaseException] = []
    with app_context as (app, url):

        def work(i: int) -> None:
            try:
                client = client_for(url, app.registry.root / f"c{i}")
                client.predict(handle_file(str(clip)), api_name="/open")
                scenario(on_client(client), points[i])
                results[i] = client_state(client, tmp_path)
            except BaseException as error:  # noqa: BLE001 - reported by the main thread
                errors.append(error)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        for i, point in enumerate(points):
            with Session.open(clip, predictor()) as direct:
                scenario(on_session(direct), point)
                assert_same_masks(results[i]["masks"], all_masks(direct))
                assert len(results[i]["masks"]) == 2 * NUM_FRAMES
                view = results[i]["view"]
                assert [o["timeline"].replace("D", "M") for o in view["objects"]] == ["PMMPMM", "PMMMMM"]
                assert view["enabled"]["undo"] and not view["enabled"]["redo"]
                direct.export_coco(tmp_path / f"direct{i}.json")
                expected_coco = json.loads((tmp_path / f"direct{i}.json").read_text())
                assert results[i]["coco"]["annotations"] == expected_coco["annotations"]
                direct.save(tmp_path / f"direct{i}_session.json")
                expected = json.loads((tmp_path / f"direct{i}_session.json").read_text())
                for field in ("objects", "log", "masks", "prompt_clocks"):
                    assert results[i]["saved"][field] == expected[field], field
        assert results[0]["masks"][0, 1].tolist() != results[1]["masks"][0, 1].tolist()
    gpu.shutdown()


def test_a_killed_worker_gives_the_client_a_message_and_keeps_every_stored_mask(tmp_path_factory, tmp_path):
    long_clip = write_clip(tmp_path / "long.mp4", num_frames=10)
    gpu, app_context = launched(tmp_path_factory, "reuse")
    with app_context as (app, url):
        client = client_for(url, app.registry.root)
        client.predict(handle_file(str(long_clip)), api_name="/open")
        client.predict(0, 0, *disc_centre(0), True, api_name="/add_point")
        gpu.kill_during_next_call(after_values=4)
        job = client.submit("forward", 0, api_name="/propagate")
        with pytest.raises(Exception, match="GPU worker stopped"):
            list(job)
            job.result()
        view = client.predict(api_name="/view")
        assert view["objects"][0]["timeline"].replace("D", "M") == "PMMM......"
        kept = {f: masks_from_api(client.predict(f, api_name="/masks")) for f in range(4)}
        list(client.submit("forward", 0, api_name="/propagate"))  # a fresh worker replays and goes on
        view = client.predict(api_name="/view")
        assert view["objects"][0]["timeline"].replace("D", "M") == "PMMMMMMMMM"
        with Session.open(long_clip, predictor()) as direct:
            direct.add_point(0, direct.add_object(), *disc_centre(0))
            list(direct.propagate("forward", start=0, end=3))
            assert_same_masks({(f, o): m for f, ms in kept.items() for o, m in ms.items()}, all_masks(direct))
    gpu.shutdown()


def test_stop_through_the_client_ends_a_worker_run_within_a_frame_and_the_worker_keeps_up(
    tmp_path_factory, tmp_path
):
    long_clip = write_clip(tmp_path / "long.mp4", num_frames=40)
    gpu, app_context = launched(tmp_path_factory, "reuse")
    with app_context as (app, url):
        client = client_for(url, app.registry.root)
        client.predict(handle_file(str(long_clip)), api_name="/open")
        client.predict(0, 0, *disc_centre(0), True, api_name="/add_point")
        job, done_when_stopped = track_then_stop(client)
        job.result()
        timeline = client.predict(api_name="/view")["objects"][0]["timeline"]
        tracked = timeline.replace("D", "M").count("M") + 1  # + the prompted frame
        # the client sees updates a little late: the run may be a couple of frames further than it was told
        assert done_when_stopped <= tracked <= done_when_stopped + 3 < 40
        client.predict(1, 0, *disc_centre(1), False, api_name="/add_point")
        session = app.registry.peek(client.session_hash).session
        assert session._executor.stats.replayed == 0  # the worker held exactly the frames the tab stored
    gpu.shutdown()
