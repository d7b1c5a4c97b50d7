"""An RTCP handler that fails does not end the call (media/aiortc_glue.py ``_guarded``), and a
recorder tap that fails when its track ends does not fail the publisher's leave.

aiortc awaits the handlers the SFU installs inside its DTLS transport's receive loop; an
exception escaping one closed the transport. Two real aiortc peers on loopback: the receiving
side's handler fails on every sender report, and the transport stays up and keeps handing
over the reports that follow."""

from __future__ import annotations

import asyncio

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpCodecParameters
from aiortc.contrib.media import MediaPlayer
from aiortc.rtp import AnyRtcpPacket, RtcpSrPacket

from media import aiortc_glue as glue
from media.forwarder import UpTrack
from media.ice import apply_ice_policy
from media.observer import ForwardedPacket
from tests.media.conftest import VP8_OPUS
from tests.media.peers import LOOPBACK
from tests.polling import eventually


async def test_a_failing_rtcp_handler_leaves_the_transport_up() -> None:
    sender_pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    receiver_pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    player = MediaPlayer(VP8_OPUS)
    reports: list[AnyRtcpPacket] = []

    async def failing(packet: AnyRtcpPacket) -> None:
        if isinstance(packet, RtcpSrPacket):
            reports.append(packet)
        raise RuntimeError("a handler bug")

    try:
        assert player.audio is not None
        sender_pc.addTrack(player.audio)
        receiver_pc.addTransceiver("audio", direction="recvonly")
        for pc in (sender_pc, receiver_pc):
            apply_ice_policy(pc, LOOPBACK)
        await sender_pc.setLocalDescription(await sender_pc.createOffer())
        await receiver_pc.setRemoteDescription(sender_pc.localDescription)
        (transceiver,) = receiver_pc.getTransceivers()
        glue.take_over_receiver(transceiver.receiver, failing)
        await receiver_pc.setLocalDescription(await receiver_pc.createAnswer())
        await sender_pc.setRemoteDescription(receiver_pc.localDescription)
        # aiortc sends a sender report every 0.5-1.5 s: three of them, each one raising
        assert await eventually(lambda: len(reports) >= 3, 60), len(reports)
        dtls = transceiver.receiver.transport
        assert dtls.state == "connected"
        assert receiver_pc.connectionState == "connected"
    finally:
        await asyncio.gather(sender_pc.close(), receiver_pc.close())
        if player.audio is not None:
            player.audio.stop()


class _TapFailingOnClose:
    def on_rtp(self, packet: ForwardedPacket) -> None:
        pass

    def on_sender_report(self, ntp: int, rtp_ts: int) -> None:
        pass

    def close(self) -> None:
        raise IndexError("a recorder bug")


async def test_a_tap_failing_on_close_does_not_fail_the_track_close(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def send_rtcp(data: bytes) -> None:
        pass

    opus = RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, channels=2,
                                 payloadType=111)
    up = UpTrack("caller:0", "audio", opus, [opus], publisher_id="caller", rtcp_ssrc=1,
                 send_rtcp=send_rtcp, pli_interval_s=1.0, history=64, remb_bitrate_bps=1_000_000)
    up.tap = _TapFailingOnClose()
    up.close()  # Participant.close -> Room.remove: the leave goes on to "participant_left"
    assert up.closed and up.tap is None
    assert "recording_tap_close_failed" in caplog.text
