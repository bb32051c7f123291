include $(sort $(wildcard $(BR2_EXTERNAL_GONDWANA_PATH)/package/*/*.mk))
