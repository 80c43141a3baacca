"""Sandbox JOS gateway: ``POST /jd/routerjson``, ``jingdong.pop.order.search``."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from orderhub.platforms.base import local_time
from orderhub.platforms.jd import (
    LISTING_METHOD,
    LISTING_RESPONSE_KEY,
    METHOD,
    RESPONSE_KEY,
    SETTLE_METHOD,
    SETTLE_RESPONSE_KEY,
    STOCK_METHOD,
    STOCK_RESPONSE_KEY,
    sign,
)
from orderhub_tools.sandbox import world as w
from orderhub_tools.sandbox.gateway import Gateway, parse_local, yuan

STATE = {
    w.PAID: ("WAIT_SELLER_STOCK_OUT", "等待出库"),
    w.REFUND_REQUESTED: ("LOCKED", "已锁定"),
    w.REFUNDED: ("TRADE_CANCELED", "订单取消"),
    w.SHIPPED: ("WAIT_GOODS_RECEIVE_CONFIRM", "等待确认收货"),
    w.COMPLETED: ("FINISHED_L", "完成"),
}
NO_TIME = "0001-01-01 00:00:00"  # JOS writes "no value" this way
MAX_WINDOW = 31 * 24 * 3600


def _t(ts: int | None) -> str:
    return NO_TIME if ts is None else local_time(datetime.fromtimestamp(ts).astimezone())


def error(code: str, en: str, zh: str) -> dict[str, Any]:
    return {"error_response": {"code": code, "zh_desc": zh, "en_desc": en}}


def settle_detail(line) -> dict[str, Any]:
    """One modelled JOS settlement line (see platforms/jd.py SETTLE_METHOD)."""
    return {
        "settleId": line.line_id,
        "orderId": int(line.order_id),
        "settleType": 2 if line.line_type == "refund" else 1,
        "settleTime": _t(line.settled_at),
        "orderPayTime": _t(line.order_time),
        "orderPayment": yuan(line.gross),
        "platformSubsidy": yuan(line.platform_subsidy),
        "commission": yuan(line.commission),
        "serviceFee": yuan(line.service_fee),
        "otherFee": yuan(line.other_fee),
        "refundAmount": yuan(line.refund),
        "settleAmount": yuan(line.settle_amount),
        "currency": "CNY",
    }


def stock_answer(success: bool, code: str = "", msg: str = "") -> dict[str, Any]:
    """jingdong.stock.write.updateSkuStock's answer (its error codes are UNCONFIRMED)."""
    result: dict[str, Any] = {"code": "0", "success": success}
    if not success:
        result.update(errorCode=code, msg=msg)
    return {STOCK_RESPONSE_KEY: result}


class JdGateway(Gateway):
    platform = "jd"
    prefix = "/jd/routerjson"
    base_rate = 45.0
    shows_unpaid = False  # unpaid orders live in jingdong.pop.order.notPayOrderInfo
    has_aftersale = False  # after-sales are a separate API
    shows_ship_time = False  # no shipment time field in the search (UNCONFIRMED)
    stock_reduced_on = "created"  # 下单减库存

    @staticmethod
    def order_id(digits: str, hour: int) -> str:
        return "3" + digits[:11]
    first_page = 1

    def handle(self, path, query, form, body):
        params = {**query, **form}
        for name in ("method", "app_key", "access_token", "timestamp", "sign", "360buy_param_json"):
            if not params.get(name):
                return 200, error("3", f"Missing parameter: {name}", f"缺少参数:{name}")
        if params["app_key"] != self.credentials.app_key:
            return 200, error("21", "Invalid app_key", "无效的app_key")
        if sign(params, self.credentials.app_secret) != params["sign"]:
            return 200, error("19", "Invalid signature", "签名无效")
        shop_id = self.shop_for(params["access_token"])
        if shop_id is None:
            return 200, error("18", "Invalid access_token", "无效的access_token")
        if params["method"] == SETTLE_METHOD:
            return self.settle_details(shop_id, params)
        if params["method"] == STOCK_METHOD:
            return self.update_sku_stock(shop_id, params)
        if params["method"] == LISTING_METHOD:
            return self.search_sku_list(shop_id, params)
        if params["method"] != METHOD:
            return 200, error("22", "Invalid method", "无效的方法")
        try:
            business = json.loads(params["360buy_param_json"])
            start, end = parse_local(business["start_date"]), parse_local(business["end_date"])
            if start is None or end is None:
                raise ValueError("start_date/end_date: yyyy-MM-dd HH:mm:ss")
            page = int(business.get("page", 1))
            page_size = int(business.get("page_size", 20))
        except (KeyError, ValueError) as exc:
            return 200, error("61", f"Invalid parameter: {exc}", "参数错误")
        if not 0 < end - start <= MAX_WINDOW:
            return 200, error("61", "start_date and end_date must be at most one month apart",
                              "查询时间间隔不能超过一个月")
        if not 1 <= page_size <= 100 or page < 1:
            return 200, error("61", "page_size must be 1..100, page from 1",
                              "page_size必须在1到100之间")
        orders, total = self.page(shop_id, start, end, page, page_size)
        return 200, {RESPONSE_KEY: {"code": "0", "searchorderinfo_result": {
            "apiResult": {"success": True, "chineseErrCode": "成功", "englishErrCode": "success",
                          "numberCode": 10100000},
            "orderTotal": total,
            "orderInfoList": orders,
        }}}

    def settle_details(self, shop_id: str, params: dict[str, str]):
        try:
            business = json.loads(params["360buy_param_json"])
            start = parse_local(business["settle_time_start"])
            end = parse_local(business["settle_time_end"])
            if start is None or end is None:
                raise ValueError("settle_time_start/settle_time_end: yyyy-MM-dd HH:mm:ss")
            page = int(business.get("page", 1))
            page_size = int(business.get("page_size", 20))
        except (KeyError, ValueError) as exc:
            return 200, error("61", f"Invalid parameter: {exc}", "参数错误")
        if not 0 < end - start <= 24 * 3600 or not 1 <= page_size <= 100 or page < 1:
            return 200, error("61", "settle time span at most one day, page_size 1..100",
                              "参数错误")
        lines = self.settlement_lines(shop_id, start, end)
        chosen = lines[(page - 1) * page_size:page * page_size]
        return 200, {SETTLE_RESPONSE_KEY: {"code": "0", "result": {
            "settleDetailList": [settle_detail(line) for line in chosen],
            "totalCount": len(lines)}}}

    def token(self, query, form):
        return {**query, **form}.get("access_token")

    def request_time(self, query, form):
        return parse_local({**query, **form}.get("timestamp"))

    def throttled(self, ban_seconds):
        return error("70", f"Calls too frequent, retry after {ban_seconds} seconds", "调用频率超限")

    def clock_refused(self):
        return error("20", "Invalid timestamp", "时间戳错误")  # UNCONFIRMED code

    def render(self, order: w.Order, version: int) -> dict[str, Any]:
        state, remark = STATE[order.kind(version)]
        coupons = []
        if order.platform_discount:
            coupons.append({"orderId": order.order_id, "skuId": order.lines[0].sku.sku_id,
                            "couponType": "41-京东券优惠", "couponPrice": yuan(order.platform_discount)})
        return {
            "orderId": order.order_id,
            "venderId": order.shop_id,
            "orderType": "22",
            "payType": "4-在线支付",
            "orderTotalPrice": yuan(order.goods_amount),
            "orderSellerPrice": yuan(order.goods_amount - order.merchant_discount),
            "orderPayment": yuan(order.paid_amount),
            "freightPrice": yuan(order.shipping_fee),
            "sellerDiscount": yuan(order.merchant_discount),
            "balanceUsed": "0.00",
            "taxFee": "0.00",
            "orderState": state,
            "orderStateRemark": remark,
            "orderStartTime": _t(order.created_time),
            "paymentConfirmTime": _t(order.event_time(w.PAID, version)),
            "orderEndTime": _t(order.closed_time(version)),
            "modified": _t(order.modified(version)),
            "pin": order.buyer_phone[-4:] + "_jd",
            "consigneeInfo": {
                "fullname": order.buyer_name,
                "mobile": order.buyer_phone,
                "telephone": "",
                "fullAddress": f"{order.province}{order.city}{order.district}{order.street}",
                "province": order.province,
                "city": order.city,
                "county": order.district,
                "town": "",
            },
            "itemInfoList": [
                {"skuId": line.sku.sku_id, "outerSkuId": line.sku.outer_sku_id,
                 "skuName": line.sku.title, "jdPrice": yuan(line.sku.price),
                 "itemTotal": str(line.quantity), "wareId": line.sku.product_id}
                for line in order.lines
            ],
            "couponDetailList": coupons,
        }


    def update_sku_stock(self, shop_id: str, params: dict[str, str]):
        """jingdong.stock.write.updateSkuStock: sets a SKU's stock (no delta)."""
        try:
            business = json.loads(params["360buy_param_json"])
            sku_id, quantity = str(business["skuId"]), int(business["stockNum"])
        except (KeyError, ValueError) as exc:
            return 200, error("61", f"Invalid parameter: {exc}", "参数错误")
        _, refused = self.stock_update(shop_id, product_id=None, sku_id=sku_id,
                                       quantity=quantity, increment=False)
        if refused is not None:
            code = "sku_not_exist" if refused.reason == "not_found" else "stock_invalid"
            return 200, stock_answer(False, code, str(refused))
        return 200, stock_answer(True)

    def search_sku_list(self, shop_id: str, params: dict[str, str]):
        """jingdong.sku.read.searchSkuList: the shop's SKUs with their stock."""
        try:
            business = json.loads(params["360buy_param_json"])
            page, size = int(business.get("page", 1)), int(business.get("pageSize", 20))
            if page < 1 or not 1 <= size <= 100:
                raise ValueError("page from 1, pageSize 1..100")
        except (KeyError, ValueError) as exc:
            return 200, error("61", f"Invalid parameter: {exc}", "参数错误")
        products, total = self.listing_page(shop_id, page, size)
        skus = [{"skuId": int(sku.sku_id), "wareId": int(sku.product_id),
                 "outerId": sku.outer_sku_id, "skuName": sku.title, "stockNum": quantity}
                for sku, quantity in products]
        return 200, {LISTING_RESPONSE_KEY: {"code": "0", "page": {"data": skus,
                                                                  "totalItem": total}}}
