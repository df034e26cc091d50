print("bff")
