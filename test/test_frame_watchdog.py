"""frame_watchdog: one warning when frames are lost while detections (or publishers) are there, one on recovery."""

import pytest

from pose_classifier_ros.stream.frame_watchdog import FrameWatchdog, FrameWatchdogConfig


class FakeClock:
    def __init__(self):
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def run(
    dog: FrameWatchdog,
    clock: FakeClock,
    seconds: float,
    *,
    images_hz=0.0,
    detections_hz=0.0,
    publishers=(),
    size=(1920, 1080),
):
    """Advance in 0.1 s steps, feeding arrivals at the given rates; check every second. Returns the events."""
    events, step = [], 0.1
    next_img = next_det = clock.t
    end = clock.t + seconds
    while clock.t < end - 1e-9:
        clock.t = round(clock.t + step, 6)
        if images_hz and clock.t >= next_img:
            dog.image_received(*size, "rgb8")
            next_img += 1.0 / images_hz
        if detections_hz and clock.t >= next_det:
            dog.detections_received()
            next_det += 1.0 / detections_hz
        if abs(clock.t - round(clock.t)) < 1e-6:
            event = dog.check(publishers)
            if event is not None:
                events.append((round(clock.t - 100.0), event))
    return events


def test_no_images_while_detections_arrive_warns_once_then_recovers_once():
    clock = FakeClock()
    dog = FrameWatchdog("/cam/image_raw", FrameWatchdogConfig(timeout_s=3.0), clock=clock)
    events = run(dog, clock, 20, detections_hz=1.0, publishers=["/camera_driver"])
    assert len(events) == 1
    t, event = events[0]
    assert event.kind == "lost" and 3 <= t <= 5 and dog.lost
    text = event.message
    for part in (
        "/cam/image_raw",
        "/camera_driver",
        "no frame received yet",
        "best-effort",
        "large_images:=true",
        "fastdds_large_images.xml",
        "image_transport: compressed",
        "qos_overrides./cam/image_raw.subscription.reliability: reliable",
    ):
        assert part in text, (part, text)
    events = run(dog, clock, 15, images_hz=1.0, detections_hz=1.0, publishers=["/camera_driver"])
    assert [e.kind for _, e in events] == ["recovered"] and not dog.lost
    assert "frames flow again on /cam/image_raw" in events[0][1].message


def test_publisher_without_any_frame_warns_and_a_paused_camera_does_not():
    clock = FakeClock()
    dog = FrameWatchdog("/img", FrameWatchdogConfig(timeout_s=3.0), clock=clock)
    events = run(dog, clock, 10, publishers=["/cam"])  # a publisher, no frame ever
    assert [e.kind for _, e in events] == ["lost"]
    assert "the topic has a publisher but no image was received in" in events[0][1].message
    assert [e.kind for _, e in run(dog, clock, 5, images_hz=5.0, publishers=["/cam"])] == ["recovered"]
    # The camera pauses (publisher still there, no detections either): not a transport problem.
    assert run(dog, clock, 20, publishers=["/cam"]) == []
    # Detections go on while its frames stop: lost, and the message names the last frame's size.
    run(dog, clock, 2, images_hz=5.0, detections_hz=5.0, publishers=["/cam"], size=(1920, 1080))
    events = run(dog, clock, 10, detections_hz=5.0, publishers=["/cam"])
    assert [e.kind for _, e in events] == ["lost"]
    assert "last frame received: 1920x1080 rgb8" in events[0][1].message
    assert "detections keep arriving but no image was received for" in events[0][1].message


def test_a_frame_trickling_through_does_not_end_the_warning():
    """1080p over default transport: now and then one frame arrives. One warning, no flapping."""
    clock = FakeClock()
    dog = FrameWatchdog("/img", FrameWatchdogConfig(timeout_s=5.0), clock=clock)
    events = run(dog, clock, 8, detections_hz=1.0, publishers=["/cam"])
    for _ in range(5):  # a single frame every 8 s, detections at 1 Hz
        dog.image_received(1920, 1080, "rgb8")
        events += run(dog, clock, 8, detections_hz=1.0, publishers=["/cam"])
    assert [e.kind for _, e in events] == ["lost"] and dog.lost


def test_images_far_rarer_than_detections():
    clock = FakeClock()
    dog = FrameWatchdog("/img", FrameWatchdogConfig(timeout_s=3.0, window_s=10.0, min_image_ratio=0.25), clock=clock)
    events = run(dog, clock, 30, images_hz=0.5, detections_hz=10.0, publishers=["/cam"])
    assert [e.kind for _, e in events] == ["lost"]
    assert "image(s) but" in events[0][1].message and "detection message(s) in the last 10 s" in events[0][1].message


def test_quiet_when_frames_flow_or_nothing_is_there():
    clock = FakeClock()
    dog = FrameWatchdog("/img", FrameWatchdogConfig(timeout_s=3.0), clock=clock)
    assert run(dog, clock, 30, images_hz=10.0, detections_hz=10.0, publishers=["/cam"]) == []
    assert run(dog, clock, 5, images_hz=10.0) == []  # images only (no detector yet)
    idle = FrameWatchdog("/img", FrameWatchdogConfig(timeout_s=3.0), clock=clock)
    assert run(idle, clock, 30) == []  # no detector, no camera: nothing to say (diagnostics cover it)
    # 15 of 20 frames arriving (the shipped profile, measured) is lossy but not "lost"
    ok = FrameWatchdog("/img", FrameWatchdogConfig(timeout_s=5.0), clock=clock)
    assert run(ok, clock, 20, images_hz=0.75, detections_hz=1.0, publishers=["/cam"]) == []


def test_compressed_transport_message_and_validation():
    clock = FakeClock()
    dog = FrameWatchdog("/img/compressed", FrameWatchdogConfig(timeout_s=2.0), clock=clock, transport="compressed")
    ((t, event),) = run(dog, clock, 5, detections_hz=2.0)
    assert "publisher(s): none seen" in event.message and "large_images" not in event.message
    with pytest.raises(ValueError):
        FrameWatchdogConfig(timeout_s=0)
    with pytest.raises(ValueError):
        FrameWatchdogConfig(min_image_ratio=2.0)


def test_a_camera_restart_blames_the_publisher_not_the_frame_size():
    """Found by fault injection: after the camera process was killed and restarted, the warning named the
    dead publisher beside an unnamed one and blamed large frames, although 640x480 frames had been flowing."""
    clock = FakeClock()
    dog = FrameWatchdog("/cam/image_raw", FrameWatchdogConfig(timeout_s=3.0), clock=clock)
    assert run(dog, clock, 10, images_hz=10.0, detections_hz=10.0, publishers=["/camera"], size=(640, 480)) == []
    restarting = ["/camera", "_NODE_NAMESPACE_UNKNOWN_/_NODE_NAME_UNKNOWN_"]  # the dead one is still listed
    ((_, event),) = run(dog, clock, 6, detections_hz=10.0, publishers=restarting)
    text = event.message
    assert event.kind == "lost" and "last frame received: 640x480 rgb8" in text, text
    assert "image publisher(s): /camera, 1 unnamed (its node not discovered yet)" in text, text
    assert "the camera process stopped or restarted" in text and "1 not identified yet" in text, text
    assert "large raw frames" not in text and "large_images" not in text, text
    events = run(dog, clock, 5, images_hz=10.0, detections_hz=10.0, publishers=["/camera"], size=(640, 480))
    assert [e.kind for _, e in events] == ["recovered"]

    # The camera is gone for good: no publisher at all.
    ((_, event),) = run(dog, clock, 6, detections_hz=10.0, publishers=[])
    assert "the camera stopped" in event.message and "no publisher any more" in event.message, event.message
    assert "large raw frames" not in event.message


def test_frames_that_flowed_and_stopped_with_the_same_publisher():
    clock = FakeClock()
    dog = FrameWatchdog("/img", FrameWatchdogConfig(timeout_s=3.0), clock=clock)
    run(dog, clock, 5, images_hz=10.0, detections_hz=10.0, publishers=["/cam"], size=(640, 480))
    ((_, event),) = run(dog, clock, 6, detections_hz=10.0, publishers=["/cam"])
    assert "the publisher stopped sending" in event.message and "is still there" in event.message
    assert "size is not the cause" in event.message and "large raw frames" not in event.message
