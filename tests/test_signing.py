"""Known-answer tests for every platform's signature.

The expected digests were computed outside Python (coreutils ``md5sum``,
``openssl dgst -hmac``) from the strings each platform's documentation
prescribes, so these tests fail if a client concatenates, sorts, wraps or
encodes differently from the documented algorithm.
"""

from orderhub.platforms import douyin, jd, pdd, tmall

TOP_PARAMS = {
    "method": "taobao.item.seller.get",
    "app_key": "12345678",
    "session": "test",
    "timestamp": "2016-01-01 12:00:00",
    "v": "2.0",
    "sign_method": "md5",
    "fields": "num_iid,title,nick,price",
    "num_iid": "11223344",
}


def test_tmall_md5_wraps_secret_around_sorted_pairs():
    assert tmall.sign(TOP_PARAMS, "helloworld", "md5") == "4398BEE87A3CB7C79421E4977CCE75E8"


def test_tmall_sign_ignores_sign_and_empty_values():
    params = {**TOP_PARAMS, "sign": "X", "partner_id": ""}
    assert tmall.sign(params, "helloworld", "md5") == "4398BEE87A3CB7C79421E4977CCE75E8"


def test_tmall_hmac_md5_and_hmac_sha256():
    # TOP's "hmac" is HMAC-MD5 over the same concatenation, without wrapping.
    assert tmall.sign(TOP_PARAMS, "helloworld", "hmac") == "7C0B517C4A445DE824640A6DEC7D6934"
    assert tmall.sign(TOP_PARAMS, "helloworld", "hmac-sha256") == (
        "63368FECABE344C492A49DE0509D5CFDC550016568BC38CB412F43881F2F33BF")


def test_jd_signs_system_params_and_360buy_param_json():
    params = {
        "method": "jingdong.pop.order.search",
        "app_key": "jdkey1",
        "access_token": "tok123",
        "timestamp": "2026-11-11 01:03:00",
        "v": "2.0",
        "360buy_param_json": '{"order_state":"WAIT_SELLER_STOCK_OUT","page":"1"}',
    }
    assert jd.sign(params, "jdsecret") == "3D8BDBD8718922D496D17CE4EDC53264"


def test_pdd_md5_uppercase():
    params = {
        "type": "pdd.order.number.list.increment.get",
        "client_id": "pddclient",
        "access_token": "pddtok",
        "timestamp": "1794330180",
        "data_type": "JSON",
        "version": "V1",
    }
    assert pdd.sign(params, "testSecret") == "7114C1996AF1ECA21070BBA694C86E23"


def test_douyin_hmac_sha256_lowercase_and_md5():
    body = douyin.param_json({"size": 100, "page": 0})
    assert body == '{"page":0,"size":100}'  # compact, keys sorted
    assert douyin.sign("7123456", "order.searchList", body, "1794330180", "dysecret") == (
        "c38054641efa47c42523b0790624bbb04d31c953db503d61021ab6508be41425")
    assert douyin.sign("7123456", "order.searchList", body, "1794330180", "dysecret", "md5") == (
        "fdaea3e9fbf6f118b84db7728aa35c4d")
