"""Demo shop data: customers, orders, subscriptions, lifecycles, surveys and feedback.

`load_demo_data` fills an empty database with two years of history of a small online shop
selling clothing, home goods, kitchenware and monthly coffee subscription boxes (EUR).
The history is replayed through the domain layer: every order gets its lifecycle from
`lifecycle.lifecycle_for_order`, stages move with the order's status (`sync_with_order`,
`advance`) and feedback is written with `feedback.record`, so each row carries the stage
its lifecycle was in at that moment and its sentiment and themes.

Built-in findings for the dashboard to show:

* delivery CSAT after `order_delivered` surveys is clearly worse for DPD parcels
  (late and damaged parcels, rude couriers);
* the support stage scores lower than every other stage (CSAT ~3, CES above 4);
* purchase CSAT drops for about five weeks some 4-5 months ago (a checkout bug);
* subscription NPS drops after the price increase four months ago, churn reasons follow;
* the Merino Wool Crew Jumper collects poor storefront reviews (pilling).

The customers used in the README (C1001 Jane Doe, C1002 Tom Becker, C1003 Priya Shah) and
their orders A10001-A10006 are fixed; none of them was sent a survey in the last 14 days.

One module per step:

* `data.py`: the fixed data (products, texts, carriers, names, the odds behind the findings);
* `planner.py`: the history planned from the seeded generator (`Planner`);
* `writer.py`: the plan replayed through the domain layer (`Writer`);
* `crowd.py`: a year of a bigger shop's customers and feedback, in bulk;
* `support.py`: escalations handled by the demo agents, and applied insights;
* `loader.py`: `load_demo_data`, all of it in one transaction.

The web app imports this package only where it serves the demo shop (`bot/web/demo_shop.py`,
never mounted when APP_ENV=production).
"""

from __future__ import annotations

from bot.demo.data import PRODUCT_BY_SKU, PRODUCTS, Product
from bot.demo.loader import DemoSummary, load_demo_data

__all__ = ["PRODUCTS", "PRODUCT_BY_SKU", "DemoSummary", "Product", "load_demo_data"]
