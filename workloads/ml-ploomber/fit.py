# %% [markdown]
# Train a model (a nearest-centroid classifier, so the example needs only pandas)

# %%
import pickle

import pandas as pd

# %% tags=["parameters"]
upstream = ["join"]
product = None

# %%
df = pd.read_parquet(str(upstream["join"]))
X = df.drop("target", axis="columns")
y = df.target

# %%
test = df.index % 3 == 0
centroids = X[~test].groupby(y[~test]).mean()

# %%
distances = ((X[test].to_numpy()[:, None, :] - centroids.to_numpy()[None]) ** 2).sum(axis=2)
y_pred = centroids.index[distances.argmin(axis=1)]
accuracy = float((y_pred == y[test]).mean())
print(f"accuracy: {accuracy:.3f} on {int(test.sum())} flowers")

# %%
with open(product["model"], "wb") as f:
    pickle.dump({"centroids": centroids, "accuracy": accuracy}, f)
