"""The installed node in its own process answers the package's own services over DDS."""

from __future__ import annotations

from std_srvs.srv import Trigger

from radseg_ros.srv import MapFile, TextQuery


def test_node_answers_services_across_processes(start_node, client, tmp_path):
    node = start_node()
    # save on an empty map: a real file is written in the map directory and the answer says so
    res = client.call(MapFile, "/radseg/save_map", MapFile.Request(path="empty.rsmap"), proc=node)
    assert node.alive(), node.log()
    assert res.success, res.message
    assert res.voxels == 0
    assert (tmp_path / "maps" / "empty.rsmap").is_file()

    # the saved file loads back
    res = client.call(MapFile, "/radseg/load_map", MapFile.Request(path="empty.rsmap"))
    assert res.success, res.message

    # paths escaping the map directory are refused, and nothing is written there
    res = client.call(MapFile, "/radseg/save_map", MapFile.Request(path="../escaped.rsmap"))
    assert not res.success
    assert "outside the map directory" in res.message
    assert not (tmp_path / "escaped.rsmap").exists()

    # a query on an empty map is refused with a reason, not an exception
    res = client.call(TextQuery, "/radseg/query", TextQuery.Request(queries=["chair"], top_k=3))
    assert not res.success
    assert "empty" in res.message

    res = client.call(Trigger, "/radseg/reset_map", Trigger.Request())
    assert res.success
    assert node.alive(), node.log()
